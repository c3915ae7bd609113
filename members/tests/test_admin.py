"""The member admin as support staff use it: roles, the read-only ledger, forms, search.

Everything goes through the real URLs, views and templates with the Django test client
on PostgreSQL; pages are checked for what a person sees and the database for what was
(or was not) written.
"""

from decimal import Decimal

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape

from members import forms, services
from members.models import (
    ExportJob,
    ImportJob,
    Member,
    MemberStatusChange,
    PointsAdjustment,
    PointsEntry,
    ProgrammeSettings,
    Purchase,
)
from members.roles import ANALYST, MARKETING_MANAGER, SUPPORT
from members.tests.factories import (
    MemberFactory,
    ProductCategoryFactory,
    StoreFactory,
    points_give,
    purchase_with_accrual,
)

pytestmark = pytest.mark.django_db

ADMIN_LOGIN = reverse("admin:login")

# Roles that must not move points or decide adjustments (None: staff without a group).
NOT_SUPPORT_ROLES = pytest.mark.parametrize(
    "role", [ANALYST, MARKETING_MANAGER, None], ids=["analyst", "manager", "no-group"]
)
EVERY_ROLE = pytest.mark.parametrize(
    "who", ["superuser", SUPPORT, ANALYST, MARKETING_MANAGER],
    ids=["superuser", "support", "analyst", "manager"],
)


# ------------------------------------------------------------------ helpers


def admin_url(name: str, *args) -> str:
    return reverse(f"admin:{name}", args=args)


def page_text(response) -> str:
    return response.content.decode()


def assert_shows(response, message) -> None:
    """Assert the page shows ``message`` as the user reads it (escaped or not)."""
    text = page_text(response)
    assert str(message) in text or escape(str(message)) in text, f"{message!r} not on the page"


def adjust_data(response, **data) -> dict:
    """Return the adjust form's fields as shown (with its hidden key) plus ``data``."""
    form = response.context["form"]
    return {"idempotency_key": form["idempotency_key"].value(), **data}


def balance_of(member: Member) -> int:
    member.refresh_from_db(fields=["points_balance"])
    return member.points_balance


def nothing_written(member: Member, *, balance: int, entries: int) -> None:
    assert balance_of(member) == balance
    assert PointsEntry.objects.count() == entries
    assert not PointsAdjustment.objects.exists()


@pytest.fixture
def user_for(role_user, django_user_model):
    """Return a logged-in-able user for a role name, "superuser", or None (no group)."""

    def make(who, username: str | None = None):
        if who == "superuser":
            return django_user_model.objects.create_superuser(
                username or "root", "root@example.com", "pw-for-tests-1"
            )
        return role_user(who, username)

    return make


@pytest.fixture
def support_client(client, support_user):
    client.force_login(support_user)
    return client


@pytest.fixture
def pending_adjustment(member, second_support_user, threshold_500):
    """An adjustment of +800 asked for by the second Support user, waiting for approval."""
    return services.points_adjust(
        member_id=member.pk, amount=800, reason="Lost receipt, ticket 77",
        actor=second_support_user, idempotency_key="form:pending-800",
    )


def action_urls(member: Member, adjustment: PointsAdjustment) -> dict[str, str]:
    entry = member.points_entries.get()
    return {
        "adjust": admin_url("members_member_adjust", member.pk),
        "decide": admin_url("members_pointsadjustment_decide", adjustment.pk),
        "reverse": admin_url("members_member_reverse", member.pk, entry.pk),
        "status": admin_url("members_member_status", member.pk, "blocked"),
    }


# ------------------------------------------------------------------ role matrix


def test_support_can_open_every_member_action_page(support_client, member, pending_adjustment):
    for name, url in action_urls(member, pending_adjustment).items():
        response = support_client.get(url)
        assert response.status_code == 200, name


def test_support_adjusts_points_with_a_reason(support_client, member):
    shown = support_client.get(admin_url("members_member_adjust", member.pk))
    response = support_client.post(
        admin_url("members_member_adjust", member.pk),
        adjust_data(shown, amount="250", reason="Goodwill for a late delivery, ticket 4512"),
    )
    assert response.status_code == 302
    assert balance_of(member) == 350
    entry = PointsEntry.objects.get(kind=PointsEntry.Kind.ADJUSTMENT)
    assert (entry.amount, entry.reason) == (250, "Goodwill for a late delivery, ticket 4512")
    assert entry.actor.username == "support-1"


def test_support_cannot_adjust_without_a_reason(support_client, member):
    shown = support_client.get(admin_url("members_member_adjust", member.pk))
    response = support_client.post(
        admin_url("members_member_adjust", member.pk), adjust_data(shown, amount="250")
    )
    assert response.status_code == 200
    nothing_written(member, balance=100, entries=1)


@NOT_SUPPORT_ROLES
def test_roles_without_adjust_permission_get_403_on_adjust_and_write_nothing(
    client, role_user, member, role
):
    client.force_login(role_user(role))
    url = admin_url("members_member_adjust", member.pk)
    assert client.get(url).status_code == 403
    response = client.post(url, {"idempotency_key": "k", "amount": "500", "reason": "Why not"})
    assert response.status_code == 403
    nothing_written(member, balance=100, entries=1)


@NOT_SUPPORT_ROLES
def test_roles_without_permission_get_403_on_decide_reverse_and_status(
    client, role_user, member, pending_adjustment, role
):
    client.force_login(role_user(role))
    urls = action_urls(member, pending_adjustment)
    for name in ("decide", "reverse", "status"):
        assert client.get(urls[name]).status_code == 403, name
    posts = {
        "decide": {"approve": "Approve and post", "note": "ok"},
        "reverse": {"idempotency_key": "k", "reason": "Posted twice"},
        "status": {"idempotency_key": "k", "reason": "Card stolen"},
    }
    for name, data in posts.items():
        assert client.post(urls[name], data).status_code == 403, name
    pending_adjustment.refresh_from_db()
    member.refresh_from_db()
    assert pending_adjustment.status == PointsAdjustment.Status.PENDING
    assert member.points_balance == 100 and member.status == Member.Status.ACTIVE
    assert PointsEntry.objects.count() == 1
    assert not MemberStatusChange.objects.exists()


def test_anonymous_is_sent_to_the_login_page_from_every_member_action(
    client, member, pending_adjustment
):
    for name, url in action_urls(member, pending_adjustment).items():
        for method in (client.get, client.post):
            response = method(url)
            assert response.status_code == 302, name
            assert response["Location"].startswith(ADMIN_LOGIN), name
    assert balance_of(member) == 100
    assert PointsAdjustment.objects.get().status == PointsAdjustment.Status.PENDING


# ------------------------------------------------------------------ the ledger is read-only


@pytest.fixture
def ledger_entry(member):
    return member.points_entries.get()


@EVERY_ROLE
def test_nobody_can_edit_a_ledger_row_in_the_admin(client, user_for, ledger_entry, who):
    client.force_login(user_for(who))
    url = admin_url("members_pointsentry_change", ledger_entry.pk)
    shown = client.get(url)
    assert shown.status_code == 200
    assert 'name="_save"' not in page_text(shown)
    assert 'name="_continue"' not in page_text(shown)
    assert admin_url("members_pointsentry_delete", ledger_entry.pk) not in page_text(shown)

    response = client.post(url, {
        "member": ledger_entry.member_id, "kind": "welcome", "amount": "1000000",
        "balance_after": "1000000", "reason": "edited", "idempotency_key": "edited",
        "created_at_0": "2024-01-01", "created_at_1": "00:00:00",
    })
    assert response.status_code == 403
    stored = PointsEntry.objects.get(pk=ledger_entry.pk)
    assert (stored.amount, stored.balance_after, stored.reason) == (100, 100, "")
    assert balance_of(ledger_entry.member) == 100


@EVERY_ROLE
def test_nobody_can_delete_a_ledger_row_in_the_admin(client, user_for, ledger_entry, who):
    client.force_login(user_for(who))
    url = admin_url("members_pointsentry_delete", ledger_entry.pk)
    assert client.get(url).status_code == 403
    assert client.post(url, {"post": "yes"}).status_code == 403
    # The bulk action is not offered; posting it anyway deletes nothing.
    client.post(admin_url("members_pointsentry_changelist"), {
        "action": "delete_selected", "_selected_action": [ledger_entry.pk], "post": "yes",
    })
    assert PointsEntry.objects.filter(pk=ledger_entry.pk).exists()
    assert balance_of(ledger_entry.member) == 100


@EVERY_ROLE
def test_ledger_list_offers_neither_add_nor_delete(client, user_for, ledger_entry, who):
    client.force_login(user_for(who))
    response = client.get(admin_url("members_pointsentry_changelist"))
    assert response.status_code == 200
    assert admin_url("members_pointsentry_add") not in page_text(response)
    assert "delete_selected" not in page_text(response)
    assert not response.context["cl"].model_admin.get_actions(response.wsgi_request)
    assert client.get(admin_url("members_pointsentry_add")).status_code == 403


# ------------------------------------------------------------------ adjust form input


# The texts of members/forms.py as the user reads them.
NO_REASON = "Give a reason: every manual change of points must say why."
NOT_A_WHOLE_NUMBER = "Enter a whole number of points, e.g. 500 or -200."
ZERO = "Enter a number of points other than zero."
NO_AMOUNT = "Enter the number of points."


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"amount": "100", "reason": ""}, NO_REASON),
        ({"amount": "100", "reason": "   \n  "}, NO_REASON),
        ({"amount": "abc", "reason": "Goodwill"}, NOT_A_WHOLE_NUMBER),
        ({"amount": "12.5", "reason": "Goodwill"}, NOT_A_WHOLE_NUMBER),
        ({"amount": "0", "reason": "Goodwill"}, ZERO),
        ({"amount": "", "reason": "Goodwill"}, NO_AMOUNT),
        ({"amount": "-101", "reason": "Goodwill"}, "Not enough points: the balance is 100"),
    ],
    ids=["blank-reason", "whitespace-reason", "text-amount", "decimal-amount", "zero",
         "empty-amount", "below-zero"],
)
def test_bad_adjustment_input_shows_a_clear_message_and_writes_nothing(
    support_client, member, data, message
):
    url = admin_url("members_member_adjust", member.pk)
    response = support_client.post(url, adjust_data(support_client.get(url), **data))
    assert response.status_code == 200
    assert_shows(response, message)
    nothing_written(member, balance=100, entries=1)


def test_form_messages_are_the_ones_the_tests_expect():
    # Guards the texts above against drifting from members/forms.py.
    amount = forms.PointsAdjustForm.base_fields["amount"]
    reason = forms.PointsAdjustForm.base_fields["reason"]
    assert str(amount.error_messages["invalid"]) == NOT_A_WHOLE_NUMBER
    assert str(amount.error_messages["required"]) == NO_AMOUNT
    assert str(reason.error_messages["required"]) == NO_REASON
    assert str(services.POINTS_ZERO) == ZERO


def test_valid_adjustment_redirects_to_the_member_page_with_the_new_balance(
    support_client, member
):
    url = admin_url("members_member_adjust", member.pk)
    response = support_client.post(
        url, adjust_data(support_client.get(url), amount="-40", reason="Points given twice"),
        follow=True,
    )
    assert response.redirect_chain == [(admin_url("members_member_change", member.pk), 302)]
    assert balance_of(member) == 60
    assert 'id="member-balance">60<' in page_text(response)
    # Points are shown with a typographic minus sign (U+2212), as in the ledger.
    assert_shows(response, "\u221240 points posted. New balance: 60.")


def test_same_adjust_form_posted_twice_adjusts_once(support_client, member):
    url = admin_url("members_member_adjust", member.pk)
    data = adjust_data(support_client.get(url), amount="75", reason="Birthday goodwill")
    first = support_client.post(url, data)
    second = support_client.post(url, data)
    assert first.status_code == second.status_code == 302
    assert balance_of(member) == 175
    assert PointsAdjustment.objects.count() == 1
    assert PointsEntry.objects.filter(kind=PointsEntry.Kind.ADJUSTMENT).count() == 1


def test_each_showing_of_the_adjust_form_has_its_own_key(support_client, member):
    url = admin_url("members_member_adjust", member.pk)
    for _ in range(2):
        shown = support_client.get(url)
        support_client.post(url, adjust_data(shown, amount="10", reason="Two separate calls"))
    assert balance_of(member) == 120
    assert PointsAdjustment.objects.count() == 2


# ------------------------------------------------------------------ maker-checker


def test_large_adjustment_waits_for_a_second_support_user(
    client, support_user, second_support_user, analyst_user, member, threshold_500
):
    client.force_login(support_user)
    url = admin_url("members_member_adjust", member.pk)
    response = client.post(
        url, adjust_data(client.get(url), amount="800", reason="Lost receipt, ticket 9"),
        follow=True,
    )
    assert balance_of(member) == 100
    adjustment = PointsAdjustment.objects.get()
    assert adjustment.status == PointsAdjustment.Status.PENDING
    assert adjustment.entry is None and PointsEntry.objects.count() == 1
    assert_shows(response, "is above the approval threshold")
    assert_shows(response, "Adjustments waiting for approval")
    assert_shows(response, "Needs another person's approval")

    # The person who asked cannot approve it, not even by posting the form directly.
    decide_url = admin_url("members_pointsadjustment_decide", adjustment.pk)
    assert 'name="approve"' not in page_text(client.get(decide_url))
    refused = client.post(decide_url, {"approve": "Approve and post", "note": "me"})
    assert refused.status_code == 200
    assert_shows(refused, services.MAKER_CANNOT_APPROVE)
    adjustment.refresh_from_db()
    assert adjustment.status == PointsAdjustment.Status.PENDING
    assert balance_of(member) == 100

    client.force_login(analyst_user)
    assert client.get(decide_url).status_code == 403
    assert client.post(decide_url, {"approve": "Approve and post"}).status_code == 403

    client.force_login(second_support_user)
    member_page = client.get(admin_url("members_member_change", member.pk))
    assert decide_url in page_text(member_page)
    approved = client.post(decide_url, {"approve": "Approve and post", "note": "Checked"},
                           follow=True)
    assert approved.redirect_chain[-1][0] == admin_url("members_member_change", member.pk)
    adjustment.refresh_from_db()
    assert adjustment.status == PointsAdjustment.Status.APPLIED
    assert adjustment.decided_by == second_support_user
    assert adjustment.entry.actor == support_user
    assert balance_of(member) == 900
    assert 'id="member-balance">900<' in page_text(approved)
    assert "Adjustments waiting for approval" not in page_text(approved)


def test_rejected_adjustment_moves_no_points(client, support_user,
                                             member, pending_adjustment):
    client.force_login(support_user)
    decide_url = admin_url("members_pointsadjustment_decide", pending_adjustment.pk)
    response = client.post(decide_url, {"reject": "Reject", "note": "No ticket"})
    assert response.status_code == 302
    pending_adjustment.refresh_from_db()
    assert pending_adjustment.status == PointsAdjustment.Status.REJECTED
    assert pending_adjustment.decision_note == "No ticket"
    assert balance_of(member) == 100


# ------------------------------------------------------------------ blocking


def test_blocking_without_a_reason_shows_an_error_and_keeps_the_member_active(
    support_client, member
):
    url = admin_url("members_member_status", member.pk, "blocked")
    for reason in ("", "   "):
        response = support_client.post(url, {"idempotency_key": "k", "reason": reason})
        assert response.status_code == 200
        assert_shows(response, "Give a reason; it is kept in the member's history.")
    member.refresh_from_db()
    assert member.status == Member.Status.ACTIVE
    assert not MemberStatusChange.objects.exists()


def test_blocking_with_a_reason_shows_on_the_member_page_without_adjust_link(
    support_client, support_user, member
):
    member_url = admin_url("members_member_change", member.pk)
    assert 'id="adjust-points"' in page_text(support_client.get(member_url))
    response = support_client.post(
        admin_url("members_member_status", member.pk, "blocked"),
        {"idempotency_key": "k", "reason": "Card reported stolen"}, follow=True,
    )
    assert response.redirect_chain == [(member_url, 302)]
    member.refresh_from_db()
    assert member.status == Member.Status.BLOCKED
    change = MemberStatusChange.objects.get()
    assert (change.reason, change.actor) == ("Card reported stolen", support_user)
    text = page_text(response)
    assert '<span class="badge badge-blocked">Blocked</span>' in text
    assert "Card reported stolen" in text
    assert 'id="adjust-points"' not in text
    assert admin_url("members_member_adjust", member.pk) not in text
    assert admin_url("members_member_status", member.pk, "active") in text


def test_adjusting_a_blocked_member_by_url_is_refused_and_writes_nothing(
    support_client, support_user, member
):
    services.member_status_change(member_id=member.pk, status=Member.Status.BLOCKED,
                                  reason="Fraud check", actor=support_user)
    url = admin_url("members_member_adjust", member.pk)
    response = support_client.post(
        url, adjust_data(support_client.get(url), amount="50", reason="Goodwill")
    )
    assert response.status_code == 200
    assert_shows(response, "The member is blocked")
    nothing_written(member, balance=100, entries=1)


# ------------------------------------------------------------------ member search


@pytest.fixture
def search_members(db):
    """Members that look alike, so each search must find exactly the right ones."""
    return {
        "ivan_petrov": MemberFactory(
            first_name="Ivan", last_name="Petrov", phone="79123456789",
            email="ivan.petrov@example.com", card_number="4000000000000001",
        ),
        "ivan_sidorov": MemberFactory(
            first_name="Ivan", last_name="Sidorov", phone="79123456788",
            email="ivan.sidorov@example.com", card_number="4000000000000002",
        ),
        "maria_petrovskaya": MemberFactory(
            first_name="Maria", last_name="Petrovskaya", phone="79001112233",
            email="maria@example.com", card_number="4000000000000003",
        ),
        "sergey_petrov_cyr": MemberFactory(
            first_name="Сергей", last_name="Петров", phone="79990001122",
            email="sergey@example.ru", card_number="4000000000000004",
        ),
        "olga_ivanova_cyr": MemberFactory(
            first_name="Ольга", last_name="Иванова", phone="79990001133",
            email="olga@example.ru", card_number="4000000000000005",
        ),
    }


SEARCHES = [
    # (test id, what support staff type, who must be found)
    ("phone-plus7-brackets", "+7 (912) 345-67-89", {"ivan_petrov"}),
    ("phone-8-spaces", "8 912 345 67 89", {"ivan_petrov"}),
    ("phone-10-digits", "9123456789", {"ivan_petrov"}),
    ("phone-stored-form", "79123456789", {"ivan_petrov"}),
    ("card", "4000000000000002", {"ivan_sidorov"}),
    ("card-with-spaces", " 4000 0000 0000 0002 ", {"ivan_sidorov"}),
    ("email-other-case", "IVAN.Petrov@Example.COM", {"ivan_petrov"}),
    ("part-of-last-name", "petr", {"ivan_petrov", "maria_petrovskaya"}),
    ("first-last", "Ivan Petrov", {"ivan_petrov"}),
    ("first-name", "ivan", {"ivan_petrov", "ivan_sidorov"}),
    ("cyrillic-part-lower-case", "петр", {"sergey_petrov_cyr"}),
    ("cyrillic-first-last", "Сергей Петров", {"sergey_petrov_cyr"}),
    ("cyrillic-upper-case", "ИВАНОВА", {"olga_ivanova_cyr"}),
    ("no-match", "nobody-like-this", set()),
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [pytest.param(query, expected, id=name) for name, query, expected in SEARCHES],
)
def test_member_search_finds_exactly_the_expected_members(
    support_client, search_members, query, expected
):
    response = support_client.get(admin_url("members_member_changelist"), {"q": query})
    assert response.status_code == 200
    found = {member.pk for member in response.context["cl"].result_list}
    names = {member.pk: name for name, member in search_members.items()}
    assert {names[pk] for pk in found} == expected, f"searching {query!r}"


def test_cyrillic_names_are_upper_cased_for_search_like_latin_ones(search_members):
    # Name search compares Python's str.upper() of what was typed with this stored
    # column, so the database must upper-case Cyrillic exactly as Python does.
    stored = Member.objects.filter(pk__in=[
        search_members["ivan_petrov"].pk, search_members["sergey_petrov_cyr"].pk,
    ]).order_by("id").values_list("search_name", flat=True)
    assert list(stored) == ["IVAN PETROV", "СЕРГЕЙ ПЕТРОВ"]


def profile_data(member: Member, **changes) -> dict:
    """The member change form's fields as a browser posts them, with ``changes``."""
    data = {
        "card_number": member.card_number, "first_name": member.first_name,
        "last_name": member.last_name, "birth_date": "", "gender": member.gender,
        "phone": member.phone, "email": member.email, "city": member.city,
        "language": member.language,
        "enrolled_at_0": member.enrolled_at.strftime("%Y-%m-%d"),
        "enrolled_at_1": member.enrolled_at.strftime("%H:%M:%S"),
        "source_channel": member.source_channel, "referred_by": "",
    }
    return {**data, **changes}


def test_saving_the_profile_keeps_points_posted_while_the_form_was_open(
    support_client, support_user, member
):
    url = admin_url("members_member_change", member.pk)
    assert support_client.get(url).status_code == 200
    # Someone else adjusts the balance while this support person edits the profile.
    services.points_adjust(member_id=member.pk, amount=50, reason="Goodwill",
                           actor=support_user, idempotency_key="form:meanwhile")
    response = support_client.post(url, profile_data(member, phone="8 (912) 345-00-00",
                                                     city="Kazan"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    member.refresh_from_db()
    assert (member.phone, member.city) == ("79123450000", "Kazan")
    assert member.points_balance == 150 == sum(
        member.points_entries.values_list("amount", flat=True)
    )
    assert member.status == Member.Status.ACTIVE


def test_a_phone_already_used_by_another_member_is_refused_in_any_format(
    support_client, member
):
    other = MemberFactory(phone="79990001122")
    response = support_client.post(
        admin_url("members_member_change", other.pk), profile_data(other, phone="8 912 345 67 89")
    )
    assert response.status_code == 200
    assert_shows(response, f"Another member (card {member.card_number}) already has this "
                           "phone number.")
    other.refresh_from_db()
    assert other.phone == "79990001122"


def test_member_added_in_the_admin_is_found_by_phone_and_email_as_typed(support_client):
    response = support_client.post(admin_url("members_member_add"), {
        "card_number": " 5000000000000001 ", "first_name": "Anna", "last_name": "Smirnova",
        "phone": "+7 (912) 000-11-22", "email": "Anna.Smirnova@Example.COM", "city": "",
        "language": "ru",
        "gender": "", "birth_date": "", "enrolled_at_0": "2025-01-15",
        "enrolled_at_1": "10:00:00", "source_channel": "store", "referred_by": "",
    })
    assert response.status_code == 302, response.context["adminform"].form.errors
    member = Member.objects.get()
    assert (member.phone, member.email, member.card_number) == (
        "79120001122", "anna.smirnova@example.com", "5000000000000001"
    )
    for query in ("8 912 000 11 22", "anna.smirnova@EXAMPLE.com", "Smirn"):
        found = support_client.get(admin_url("members_member_changelist"), {"q": query})
        assert [m.pk for m in found.context["cl"].result_list] == [member.pk], query


# ------------------------------------------------------------------ query counts


def queries_for(client, url: str, params: dict | None = None) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params or {})
    assert response.status_code == 200
    return len(captured)


def test_member_list_uses_the_same_number_of_queries_for_5_or_30_members(support_client):
    url = admin_url("members_member_changelist")
    MemberFactory.create_batch(5)
    queries_for(support_client, url)  # warm per-process caches (content types)
    few = queries_for(support_client, url)
    MemberFactory.create_batch(25)
    many = queries_for(support_client, url)
    assert few == many


def member_with_history(*, purchases: int, extra_entries: int, actor, prefix: str) -> Member:
    """A member with ``purchases`` receipts of two lines (each earns an accrual row) and
    ``extra_entries`` more ledger rows: manual adjustments and reversals of them."""
    member = MemberFactory()
    store = StoreFactory()
    categories = [ProductCategoryFactory(), ProductCategoryFactory()]
    for i in range(purchases):
        purchase_with_accrual(
            store_id=store.pk, receipt_number=f"{prefix}-{i}", total=Decimal("1000"),
            member_id=member.pk, discount=Decimal("10"),
            lines=[
                services.PurchaseLineData(sku=f"SKU-{i}-{n}", amount=Decimal("500"),
                                          category_id=categories[n].pk)
                for n in range(2)
            ],
        )
    adjustments = [
        services.points_post(
            member_id=member.pk, amount=5, kind=PointsEntry.Kind.ADJUSTMENT,
            reason="Goodwill", actor=actor, idempotency_key=f"{prefix}-adj-{n}",
        ).entry
        for n in range((extra_entries + 1) // 2)
    ]
    for entry in adjustments[: extra_entries - len(adjustments)]:
        services.points_reverse(entry_id=entry.pk, reason="Posted twice", actor=actor)
    services.member_status_change(member_id=member.pk, status=Member.Status.BLOCKED,
                                  reason="Check", actor=actor)
    services.member_status_change(member_id=member.pk, status=Member.Status.ACTIVE,
                                  reason="Checked", actor=actor)
    return member


def test_member_page_uses_the_same_number_of_queries_for_a_short_or_long_history(
    support_client, support_user
):
    small = member_with_history(purchases=2, extra_entries=1, actor=support_user, prefix="s")
    large = member_with_history(purchases=25, extra_entries=15, actor=support_user, prefix="l")
    assert (small.points_entries.count(), small.purchases.count()) == (3, 2)
    assert (large.points_entries.count(), large.purchases.count()) == (40, 25)
    assert PointsEntry.objects.filter(member=large, kind=PointsEntry.Kind.REVERSAL).exists()

    queries_for(support_client, admin_url("members_member_change", small.pk))  # warm caches
    few = queries_for(support_client, admin_url("members_member_change", small.pk))
    many = queries_for(support_client, admin_url("members_member_change", large.pk))
    assert few == many
    older = queries_for(support_client, admin_url("members_member_change", large.pk),
                        {"ledger_page": "2", "purchases_page": "3"})
    assert older == many


# ------------------------------------------------------------------ every admin page opens


MEMBERS_MODELS = sorted(
    (model for model in admin.site._registry if model._meta.app_label == "members"),
    key=lambda model: model._meta.model_name,
)


@pytest.fixture
def one_of_everything(member, support_user, second_support_user):
    store = StoreFactory()
    purchase_with_accrual(
        store_id=store.pk, receipt_number="R-1", total=Decimal("200"), member_id=member.pk,
        lines=[services.PurchaseLineData(sku="SKU-1", amount=Decimal("200"),
                                         category_id=ProductCategoryFactory().pk)],
    )
    services.points_adjust(member_id=member.pk, amount=5, reason="Goodwill",
                           actor=support_user, idempotency_key="form:smoke")
    ExportJob.objects.create(user=support_user, source="members.member", file_format="csv")
    ImportJob.objects.create(kind="members", file="imports/x.csv", original_name="x.csv",
                             file_sha256="0" * 64, created_by=support_user)
    services.member_status_change(member_id=member.pk, status=Member.Status.BLOCKED,
                                  reason="Check", actor=support_user)
    return member


@pytest.mark.parametrize("model", MEMBERS_MODELS, ids=lambda model: model._meta.model_name)
def test_every_members_admin_page_opens_for_a_superuser(admin_client, one_of_everything, model):
    opts = model._meta
    changelist = admin_url(f"{opts.app_label}_{opts.model_name}_changelist")
    for params in ({}, {"q": "x"}, {"q": "+7 912"}, {"q": "a@b"}):
        response = admin_client.get(changelist, params)
        if model is ProgrammeSettings:
            assert response.status_code == 302
            assert response["Location"] == admin_url(
                "members_programmesettings_change", 1
            )
        else:
            assert response.status_code == 200, params
    model_admin = admin.site._registry[model]
    add = admin_client.get(admin_url(f"{opts.app_label}_{opts.model_name}_add"))
    assert add.status_code == (200 if model_admin.has_add_permission(add.wsgi_request) else 403)
    obj = model.objects.first()
    assert obj is not None
    change = admin_client.get(admin_url(f"{opts.app_label}_{opts.model_name}_change", obj.pk))
    assert change.status_code == 200


def test_every_members_model_with_rows_has_an_admin():
    registered = {model._meta.model_name for model in MEMBERS_MODELS}
    assert registered >= {
        "member", "memberstatuschange", "pointsadjustment", "pointsentry",
        "productcategory", "programmesettings", "purchase", "store",
    }


# ------------------------------------------------------------------ bad URLs


def test_unknown_ids_in_member_action_urls_give_404(support_client, member):
    other = MemberFactory()
    points_give(other, 10, key="other")
    other_entry = other.points_entries.get()
    for url in (
        admin_url("members_member_adjust", 987654),
        admin_url("members_member_status", 987654, "blocked"),
        admin_url("members_member_reverse", 987654, other_entry.pk),
        admin_url("members_member_reverse", member.pk, 987654),
        # A row of another member is not reversible from this member's page.
        admin_url("members_member_reverse", member.pk, other_entry.pk),
        admin_url("members_pointsadjustment_decide", 987654),
    ):
        assert support_client.get(url).status_code == 404, url
        assert support_client.post(url, {"reason": "x", "idempotency_key": "k"}).status_code == 404
    assert PointsEntry.objects.count() == 2


@pytest.mark.parametrize(
    "path",
    [
        "/admin/members/member/abc/adjust/",
        "/admin/members/member/1x/status/blocked/",
        "/admin/members/member/abc/reverse/1/",
        "/admin/members/member/1/reverse/abc/",
        "/admin/members/pointsadjustment/abc/decide/",
        "/admin/members/member/abc/change/",
    ],
)
def test_non_numeric_ids_in_member_urls_are_not_a_server_error(support_client, member, path):
    response = support_client.get(path, follow=True)
    assert response.status_code in (200, 404)
    if response.status_code == 200:
        # Django's admin sends an unknown object id back to the index with a message.
        assert "doesn’t exist" in page_text(response)
    assert PointsEntry.objects.count() == 1


def test_unknown_status_in_status_url_changes_nothing(support_client, member):
    response = support_client.post(
        admin_url("members_member_status", member.pk, "deleted"),
        {"reason": "x", "idempotency_key": "k"},
    )
    assert response.status_code in (403, 404)
    member.refresh_from_db()
    assert member.status == Member.Status.ACTIVE


@pytest.mark.parametrize(
    "params",
    [{"ledger_page": "abc"}, {"ledger_page": "-3"}, {"ledger_page": "99999"},
     {"purchases_page": "x"}, {"ledger_page": ""}],
)
def test_malformed_page_numbers_on_the_member_page_show_the_page(
    support_client, member, params
):
    response = support_client.get(admin_url("members_member_change", member.pk), params)
    assert response.status_code == 200
    assert 'id="member-balance">100<' in page_text(response)


def test_purchase_page_shows_its_lines_read_only(support_client, member):
    recording = purchase_with_accrual(
        store_id=StoreFactory().pk, receipt_number="R-9", total=Decimal("300"),
        member_id=member.pk, lines=[services.PurchaseLineData(sku="SKU-9", amount=Decimal("300"))],
    )
    url = admin_url("members_purchase_change", recording.purchase.pk)
    response = support_client.get(url)
    assert response.status_code == 200
    assert "SKU-9" in page_text(response)
    assert support_client.post(url, {"total": "1"}).status_code == 403
    assert Purchase.objects.get().total == Decimal("300")
