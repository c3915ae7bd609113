"""A segment's count equals what a direct query finds; static lists from card numbers."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.models import Segment
from campaigns.rfm import rfm_compute
from campaigns.selectors import segment_criteria_queryset, segment_members
from campaigns.services import CardListRejected, card_list_parse, segment_static_members_set
from members.models import Member, Purchase
from members.tests.factories import MemberFactory, points_give

pytestmark = pytest.mark.django_db


@pytest.fixture
def population(buy):
    """Twelve members with varied cities, ages, consents, purchases and balances."""
    today = timezone.localdate()
    members = []
    for i in range(12):
        member = MemberFactory(
            city=["Moscow", "Kazan", "moscow"][i % 3],
            gender=["female", "male", ""][i % 3],
            birth_date=date(today.year - 20 - 3 * i, (i % 12) + 1, 10),
            email_consent=i % 2 == 0,
            enrolled_at=timezone.now() - timedelta(days=30 * i),
        )
        for n in range(i % 4):
            buy(member, 100 * (i + 1), 10 * (n + 1) + i)
        if i % 3 == 0:
            points_give(member, 50 * i + 10, key=f"seg:{i}")
        members.append(member)
    MemberFactory(city="Moscow", status=Member.Status.BLOCKED)  # never in a segment
    rfm_compute()
    return members


def spend_of(member, days):
    since = timezone.now() - timedelta(days=days)
    return sum((p.total for p in Purchase.objects.filter(member=member, purchased_at__gte=since)),
               Decimal(0))


@pytest.mark.parametrize("criteria, expected", [
    ({"cities": ["Moscow"]}, lambda m: m.city.lower() == "moscow"),
    ({"email_consent": "yes", "genders": ["female"]},
     lambda m: m.email_consent and m.gender == "female"),
    ({"age_min": 30, "age_max": 45},
     lambda m: 30 <= (timezone.localdate() - m.birth_date).days // 365.25 <= 45),
    ({"purchases_min": 2, "window_days": 365},
     lambda m: Purchase.objects.filter(member=m).count() >= 2),
    ({"spend_min": "500", "window_days": 60}, lambda m: spend_of(m, 60) >= 500),
    ({"balance_min": 100}, lambda m: m.points_balance >= 100),
    ({"days_since_purchase_max": 20},
     lambda m: m.last_purchase_at and m.last_purchase_at >= timezone.now() - timedelta(days=20)),
    ({"birthday_months": [1, 2, 3]}, lambda m: m.birth_date.month in (1, 2, 3)),
    ({"rfm_segments": ["none"]}, lambda m: not hasattr(m, "rfm_cache")
     and not Purchase.objects.filter(member=m).exists()),
    ({"cities": ["Moscow"], "email_consent": "yes", "purchases_max": 1},
     lambda m: m.city.lower() == "moscow" and m.email_consent
     and Purchase.objects.filter(member=m).count() <= 1),
])
def test_segment_count_equals_a_direct_query(population, criteria, expected):
    for member in population:
        member.refresh_from_db()
    want = {m.id for m in population if expected(m)}
    with CaptureQueriesContext(connection) as queries:
        count = segment_criteria_queryset(criteria).count()
    assert len(queries) == 1  # one SQL statement, no loop
    assert count == len(want)
    assert set(segment_criteria_queryset(criteria).values_list("id", flat=True)) == want


def test_static_segment_from_card_numbers_and_row_errors(db):
    a, b = MemberFactory(card_number="1001"), MemberFactory(card_number="1002")
    ids = card_list_parse(content=b"card_number\n1001\n1002\n")
    assert sorted(ids) == sorted([a.id, b.id])
    with pytest.raises(CardListRejected) as error:
        card_list_parse(content=b"1001\n\n9999\n1001\n")
    assert [(p.row, p.message) for p in error.value.problems] == [
        (2, "empty card number"), (3, "no member has this card number"), (4, "repeats row 1"),
    ]
    segment = Segment.objects.create(name="VIP list", kind=Segment.Kind.STATIC)
    segment_static_members_set(segment=segment, member_ids=ids)
    assert set(segment_members(segment).values_list("id", flat=True)) == {a.id, b.id}
    segment.refresh_from_db()
    assert segment.last_count == 2
