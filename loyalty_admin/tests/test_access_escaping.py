"""Stored text holding HTML or script is shown as text: on the member page, lists, exports.

Other apps test their own pages; these are the members and rewards screens that show
what people typed: names, cities, reasons, reward, tier, store and category names.
"""

import csv
import io

import pytest
from django.urls import reverse

from members.models import Member
from members.services import member_status_change, points_adjust
from members.tests.factories import MemberFactory, ProductCategoryFactory, StoreFactory
from rewards.tests.factories import RewardFactory, TierFactory

pytestmark = pytest.mark.django_db

SCRIPT = '<script>alert("x")</script>'
IMAGE = "<img src=x onerror=alert(1)>"
# What must never reach a page unescaped.
RAW = (b"<script>alert", b"<img src=x")


@pytest.fixture
def hostile(support_user):
    """A member, a reward, a tier, a store and a category named with markup."""
    member = MemberFactory(
        first_name=SCRIPT, last_name=IMAGE, city=SCRIPT, email="x@example.com",
        card_number="4000999900001111",
    )
    points_adjust(
        member_id=member.pk, amount=50, reason=f"goodwill {SCRIPT}", actor=support_user,
        idempotency_key="escaping-1",
    )
    member_status_change(
        member_id=member.pk, status=Member.Status.BLOCKED, reason=IMAGE, actor=support_user
    )
    member_status_change(
        member_id=member.pk, status=Member.Status.ACTIVE, reason=SCRIPT, actor=support_user
    )
    RewardFactory(name=f"Coffee {SCRIPT}"[:100])
    TierFactory(name=IMAGE)
    StoreFactory(code="XSS-1", name=SCRIPT, city=IMAGE)
    ProductCategoryFactory(code="XSS", name=IMAGE)
    return member


def assert_escaped(content: bytes) -> None:
    for raw in RAW:
        assert raw not in content, f"unescaped {raw!r}"
    assert b"&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in content or (
        b"&lt;img src=x onerror=alert(1)&gt;" in content
    )


def test_the_member_page_shows_names_reasons_and_history_as_text(client, support_user, hostile):
    client.force_login(support_user)
    page = client.get(reverse("admin:members_member_change", args=[hostile.pk]))
    assert page.status_code == 200
    assert_escaped(page.content)
    assert b"goodwill &lt;script&gt;" in page.content  # the ledger's reason
    assert b"&lt;img src=x onerror=alert(1)&gt;" in page.content  # a status reason


@pytest.mark.parametrize("url_name", [
    "admin:members_member_changelist", "admin:members_pointsentry_changelist",
    "admin:members_memberstatuschange_changelist", "admin:members_pointsadjustment_changelist",
    "admin:rewards_reward_changelist", "admin:rewards_tier_changelist",
    "admin:members_store_changelist", "admin:members_productcategory_changelist",
])
def test_lists_show_stored_markup_as_text(client, django_user_model, hostile, url_name):
    root = django_user_model.objects.create_superuser("root", "r@example.com", "pw-1-root-x")
    client.force_login(root)
    page = client.get(reverse(url_name))
    assert page.status_code == 200
    assert_escaped(page.content)


def test_the_member_search_echoes_the_query_as_text(client, support_user, hostile):
    client.force_login(support_user)
    page = client.get(reverse("admin:members_member_changelist"), {"q": SCRIPT})
    assert page.status_code == 200
    for raw in RAW:
        assert raw not in page.content


def test_the_member_export_keeps_markup_as_plain_text_and_neutralises_formulas(
    client, django_user_model, hostile
):
    MemberFactory(first_name="=HYPERLINK(\"http://evil\")", last_name="+1", card_number="4000")
    root = django_user_model.objects.create_superuser("root", "r@example.com", "pw-1-root-x")
    client.force_login(root)
    response = client.get(reverse("admin:members_member_export"), {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    assert response["X-Content-Type-Options"] == "nosniff"
    body = b"".join(response.streaming_content) if response.streaming else response.content
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    cells = [cell for row in rows for cell in row]
    assert SCRIPT in cells  # text, exactly as typed: a CSV is never rendered as HTML
    assert "'=HYPERLINK(\"http://evil\")" in cells
    assert "'+1" in cells
