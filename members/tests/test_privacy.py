"""A member's data on request: erasure that keeps every total, and one file with everything.

Worked example used throughout: Ivan Petrov (card 4000123412341234, phone 79123456789,
ivan.petrov@example.com, born 1985-04-12, Kazan) has 100 opening points, a receipt of
1,000.00 RUB with two lines (earning 50 points), a redemption of 100 points for a
voucher, and a manual adjustment of +30: balance 80.
"""

import csv
import io
import json
from datetime import date
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.urls import path, reverse

from loyalty_admin import urls as project_urls
from members import exports, privacy
from members.models import Member, MemberStatusChange, PointsEntry, Purchase
from members.privacy import (
    ErasureRefused,
    PrivacyPart,
    member_data_export,
    member_erase,
    privacy_part_register,
)
from members.privacy_admin import privacy_urls
from members.resources import MemberExportResource
from members.roles import ANALYST, SUPPORT
from members.selectors import ledger_mismatches, member_search
from members.services import PurchaseLineData, points_adjust
from members.tests.factories import MemberFactory, StoreFactory, points_give

# The member page's privacy URLs, inside the admin namespace, until MemberAdmin.get_urls
# adds them itself (then the first match is the same view).
_site_urls, _app, _namespace = admin.site.urls
urlpatterns = [
    pattern for pattern in project_urls.urlpatterns if str(pattern.pattern) != "admin/"
] + [path("admin/", (
    [path("members/member/", (privacy_urls(admin.site._registry[Member]), None, None))]
    + list(_site_urls),
    _app, _namespace,
))]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

PERSONAL = ["Ivan", "Petrov", "79123456789", "ivan.petrov@example.com", "4000123412341234",
            "1985-04-12", "Kazan"]


# ------------------------------------------------------------------ fixtures


def erase_permission() -> Permission:
    """The custom permission (created here until Member.Meta.permissions declares it)."""
    permission, _created = Permission.objects.get_or_create(
        codename="erase_member", content_type=ContentType.objects.get_for_model(Member),
        defaults={"name": "Can erase a member's personal data on request"},
    )
    return permission


@pytest.fixture
def privacy_officer(role_user):
    """Support plus the erasure and personal-data export permissions."""
    user = role_user(SUPPORT, "privacy-officer")
    user.user_permissions.add(
        erase_permission(), Permission.objects.get(codename="export_personal_data")
    )
    return user


@pytest.fixture
def ivan(db, support_user):
    from rewards.services import purchase_record, reward_redeem
    from rewards.tests.factories import EarningRuleFactory, MemberTierFactory, RewardFactory

    member = MemberFactory(
        first_name="Ivan", last_name="Petrov", phone="79123456789",
        email="ivan.petrov@example.com", card_number="4000123412341234",
        birth_date=date(1985, 4, 12), city="Kazan", email_consent=True, sms_consent=True,
    )
    points_give(member, 100, key=f"opening:{member.pk}")
    EarningRuleFactory()
    MemberTierFactory(member=member)
    store = StoreFactory(code="MSK-001")
    purchase_record(
        store_id=store.pk, receipt_number="R-1", total=Decimal("1000.00"), member_id=member.pk,
        lines=[PurchaseLineData(sku="COFFEE", amount=Decimal("400.00")),
               PurchaseLineData(sku="CAKE", amount=Decimal("600.00"))],
    )
    reward = RewardFactory(points_cost=100)
    reward_redeem(member_id=member.pk, reward_id=reward.pk, actor=support_user,
                  idempotency_key="redeem-1")
    points_adjust(member_id=member.pk, amount=30, reason="Goodwill for a late delivery",
                  actor=support_user, idempotency_key="adjust-1")
    member.refresh_from_db()
    return member


def totals() -> dict:
    """Everything an erasure must leave as it was."""
    return {
        "balances": sorted(Member.objects.values_list("id", "points_balance")),
        "ledger": sorted(PointsEntry.objects.values_list("id", "member_id", "amount",
                                                         "balance_after")),
        "purchases": sorted(Purchase.objects.values_list("id", "member_id", "total")),
    }


# ------------------------------------------------------------------ erasure


def test_worked_example_balance_is_80(ivan):
    assert ivan.points_balance == 100 + 50 - 100 + 30 == 80


def test_erasure_removes_personal_data_and_keeps_every_total(ivan, privacy_officer):
    before = totals()
    member_erase(member_id=ivan.pk, reason="Request #2026-117", actor=privacy_officer)

    assert totals() == before
    assert list(ledger_mismatches()) == []
    row = Member.objects.values().get(pk=ivan.pk)
    assert row["card_number"] == f"ERASED-{ivan.pk}"
    assert (row["first_name"], row["last_name"], row["email"], row["phone"]) == (
        "Erased", "", "", "")
    assert (row["birth_date"], row["gender"], row["city"]) == (None, "", "")
    assert (row["email_consent"], row["sms_consent"]) == (False, False)
    assert row["status"] == Member.Status.CLOSED
    assert row["points_balance"] == 80
    flat = json.dumps(row, default=str)
    for value in PERSONAL:
        assert value not in flat


def test_erased_member_is_found_by_none_of_the_old_searches(ivan, privacy_officer):
    for query in ("79123456789", "+7 (912) 345-67-89", "ivan.petrov@example.com",
                  "4000123412341234", "Ivan Petrov", "petrov"):
        assert member_search(queryset=Member.objects.all(), query=query).exists()
    member_erase(member_id=ivan.pk, reason="Request #2026-117", actor=privacy_officer)
    for query in ("79123456789", "+7 (912) 345-67-89", "ivan.petrov@example.com",
                  "4000123412341234", "Ivan Petrov", "petrov"):
        assert not member_search(queryset=Member.objects.all(), query=query).exists(), query


def test_erased_member_appears_in_list_exports_without_personal_data(ivan, privacy_officer):
    member_erase(member_id=ivan.pk, reason="Request #2026-117", actor=privacy_officer)
    columns = exports.export_columns(MemberExportResource, personal_data=True)
    headers = exports.export_headers(columns, language="en")
    text = "".join(exports.csv_lines(Member.objects.all(), columns, headers))
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert len(rows) == 1
    for value in PERSONAL:
        assert value not in text


def test_erasure_is_logged_with_who_why_and_when_and_no_personal_data(ivan, privacy_officer):
    erasure = member_erase(member_id=ivan.pk, reason="Request #2026-117", actor=privacy_officer)
    entry = LogEntry.objects.get(pk=erasure.log_entry_id)
    assert entry.user == privacy_officer
    assert entry.change_message == "Personal data erased. Reason: Request #2026-117"
    assert entry.object_repr == f"Member #{ivan.pk} (erased)"
    assert entry.action_time == erasure.erased_at
    change = MemberStatusChange.objects.get(member=ivan)
    assert (change.from_status, change.to_status, change.actor) == (
        "active", "closed", privacy_officer)
    logged = json.dumps(
        list(LogEntry.objects.values("object_repr", "change_message"))
        + list(MemberStatusChange.objects.values("reason"))
    )
    for value in PERSONAL:
        assert value not in logged


def test_earlier_admin_log_lines_lose_the_members_name(ivan, privacy_officer, admin_user):
    from django.contrib.admin.models import CHANGE

    # What the admin writes when someone edits the profile: the member's str() as repr.
    LogEntry.objects.create(
        user=admin_user, content_type=ContentType.objects.get_for_model(Member),
        object_id=str(ivan.pk), object_repr=str(ivan), action_flag=CHANGE,
        change_message='[{"changed": {"fields": ["City"]}}]',
    )
    assert "Ivan Petrov" in LogEntry.objects.get().object_repr
    member_erase(member_id=ivan.pk, reason="Request #2026-117", actor=privacy_officer)
    assert LogEntry.objects.count() == 2
    for repr_ in LogEntry.objects.values_list("object_repr", flat=True):
        assert "Ivan" not in repr_ and "4000123412341234" not in repr_


def test_erasure_needs_the_permission_and_writes_nothing_without_it(ivan, support_user):
    before = Member.objects.values().get(pk=ivan.pk)
    with pytest.raises(PermissionDenied):
        member_erase(member_id=ivan.pk, reason="Request #1", actor=support_user)
    assert Member.objects.values().get(pk=ivan.pk) == before
    assert not LogEntry.objects.exists()


@pytest.mark.parametrize("reason", ["", "   ", "\n"])
def test_erasure_needs_a_reason(ivan, privacy_officer, reason):
    before = Member.objects.values().get(pk=ivan.pk)
    with pytest.raises(ErasureRefused) as refused:
        member_erase(member_id=ivan.pk, reason=reason, actor=privacy_officer)
    assert refused.value.code == "reason_required"
    assert "Give a reason" in str(refused.value)
    assert Member.objects.values().get(pk=ivan.pk) == before
    assert not MemberStatusChange.objects.exists()


def test_erasing_twice_is_refused_with_the_date(ivan, privacy_officer):
    member_erase(member_id=ivan.pk, reason="Request #1", actor=privacy_officer)
    with pytest.raises(ErasureRefused) as refused:
        member_erase(member_id=ivan.pk, reason="Request #1 again", actor=privacy_officer)
    assert refused.value.code == "already_erased"
    assert "already erased on" in str(refused.value)
    assert LogEntry.objects.count() == 1


def test_registered_parts_erase_what_higher_apps_keep(ivan, privacy_officer, monkeypatch):
    monkeypatch.setattr(privacy, "_parts", {})
    erased = []
    privacy_part_register(PrivacyPart(key="messages", erase=erased.append))
    member_erase(member_id=ivan.pk, reason="Request #1", actor=privacy_officer)
    assert erased == [ivan.pk]


def test_a_failing_part_rolls_the_whole_erasure_back(ivan, privacy_officer, monkeypatch):
    monkeypatch.setattr(privacy, "_parts", {})

    def fail(member_id):
        raise RuntimeError("survey store unavailable")

    privacy_part_register(PrivacyPart(key="surveys", erase=fail))
    with pytest.raises(RuntimeError):
        member_erase(member_id=ivan.pk, reason="Request #1", actor=privacy_officer)
    ivan.refresh_from_db()
    assert ivan.first_name == "Ivan" and ivan.status == "active"
    assert not LogEntry.objects.exists() and not MemberStatusChange.objects.exists()


# ------------------------------------------------------------------ export


def test_data_export_holds_everything_about_the_member(ivan, support_user):
    other = MemberFactory(first_name="Olga")
    points_give(other, 7, key="other")
    document = json.loads(member_data_export(member_id=ivan.pk))

    assert document["format"] == "loyalty-member-data/1"
    assert document["member"]["first_name"] == "Ivan"
    assert document["member"]["birth_date"] == "1985-04-12"
    assert document["member"]["city"] == "Kazan"
    assert document["consents"]["email_consent"] is True
    assert document["points"]["balance"] == 80
    ledger = document["points"]["ledger"]
    assert [(row["kind"], row["amount"]) for row in ledger] == [
        ("welcome", 100), ("accrual", 50), ("redemption", -100), ("adjustment", 30)]
    assert sum(row["amount"] for row in ledger) == 80
    [purchase] = document["purchases"]
    assert (purchase["store__code"], purchase["receipt_number"], purchase["total"]) == (
        "MSK-001", "R-1", "1000.00")
    assert [(line["sku"], line["amount"]) for line in purchase["lines"]] == [
        ("COFFEE", "400.00"), ("CAKE", "600.00")]
    assert [a["reason"] for a in document["adjustments"]] == ["Goodwill for a late delivery"]
    # Tables of the apps above, found through their foreign keys to the member.
    assert len(document["tables"]["rewards.voucher"]) == 1
    assert document["tables"]["rewards.voucher"][0]["status"] == "issued"
    assert len(document["tables"]["rewards.membertier"]) == 1
    assert "Olga" not in json.dumps(document)


def test_data_export_includes_registered_parts_and_leaves_their_tables_to_them(
    ivan, monkeypatch
):
    monkeypatch.setattr(privacy, "_parts", {})
    privacy_part_register(PrivacyPart(
        key="vouchers", export=lambda member_id: [{"member": member_id, "note": "own format"}],
        models=("rewards.Voucher",),
    ))
    document = json.loads(member_data_export(member_id=ivan.pk))
    assert document["parts"] == {"vouchers": [{"member": ivan.pk, "note": "own format"}]}
    assert "rewards.voucher" not in document["tables"]


def test_data_export_runs_a_fixed_number_of_queries(ivan, django_assert_max_num_queries):
    with django_assert_max_num_queries(20):
        member_data_export(member_id=ivan.pk)


def test_export_of_an_erased_member_holds_no_personal_data(ivan, privacy_officer):
    member_erase(member_id=ivan.pk, reason="Request #1", actor=privacy_officer)
    text = member_data_export(member_id=ivan.pk).decode()
    for value in PERSONAL:
        assert value not in text
    assert json.loads(text)["points"]["balance"] == 80


# ------------------------------------------------------------------ screens


def erase_url(member) -> str:
    return reverse("admin:members_member_erase", args=[member.pk])


def export_url(member) -> str:
    return reverse("admin:members_member_data_export", args=[member.pk])


@pytest.mark.parametrize("role", [SUPPORT, ANALYST, None])
def test_erase_and_export_pages_refuse_roles_without_the_permissions(
    client, role_user, ivan, role
):
    client.force_login(role_user(role, f"user-{role}"))
    assert client.get(erase_url(ivan)).status_code == 403
    assert client.post(erase_url(ivan), {"reason": "x", "confirm": "on"}).status_code == 403
    assert client.get(export_url(ivan)).status_code == 403
    ivan.refresh_from_db()
    assert ivan.first_name == "Ivan"


def test_anonymous_is_sent_to_the_login_page(client, ivan):
    for url in (erase_url(ivan), export_url(ivan)):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_erase_page_asks_for_a_reason_and_a_confirmation(client, privacy_officer, ivan):
    client.force_login(privacy_officer)
    page = client.get(erase_url(ivan))
    assert page.status_code == 200
    assert "kept unchanged: the points ledger" in page.content.decode()
    refused = client.post(erase_url(ivan), {"reason": "", "confirm": ""})
    assert refused.status_code == 200
    text = refused.content.decode()
    assert "This field is required." in text and "Tick the box to confirm" in text
    ivan.refresh_from_db()
    assert ivan.first_name == "Ivan"


def test_erase_page_erases_and_returns_to_the_member(client, privacy_officer, ivan):
    client.force_login(privacy_officer)
    response = client.post(erase_url(ivan), {"reason": "Request #7", "confirm": "on"})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:members_member_change", args=[ivan.pk])
    ivan.refresh_from_db()
    assert ivan.card_number == f"ERASED-{ivan.pk}" and ivan.points_balance == 80
    again = client.get(erase_url(ivan))
    assert "already been erased" in again.content.decode()


def test_csrf_is_enforced_on_the_erase_form(privacy_officer, ivan):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(privacy_officer)
    response = client.post(erase_url(ivan), {"reason": "Request #7", "confirm": "on"})
    assert response.status_code == 403
    ivan.refresh_from_db()
    assert ivan.first_name == "Ivan"


def test_data_export_downloads_one_json_file_and_is_logged(client, privacy_officer, ivan):
    client.force_login(privacy_officer)
    response = client.get(export_url(ivan))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert f'filename="member-{ivan.pk}-data-' in response["Content-Disposition"]
    assert "no-store" in response["Cache-Control"]
    assert json.loads(response.content)["member"]["last_name"] == "Petrov"
    entry = LogEntry.objects.get()
    assert (entry.user, entry.change_message) == (
        privacy_officer, "Personal data exported for the member")
    assert "Ivan" not in entry.object_repr
