"""Imports of the programme: purchases earning points, voucher uses, opening balances.

Files are written by the tests as cash registers and Russian Excel write them; points
must come out exactly as :func:`rewards.services.purchase_record` gives them, once.
"""

import codecs
import csv
import hashlib
import io
from datetime import datetime, timedelta
from decimal import Decimal

import openpyxl
import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from members import services as member_services
from members.importing import runner
from members.models import (
    ImportJob,
    Member,
    PointsEntry,
    ProductCategory,
    Purchase,
    PurchaseLine,
)
from members.tests.factories import MemberFactory, StoreFactory, ledger_sum
from rewards import services
from rewards.importing import PurchasesKind
from rewards.models import EarningRule, MemberTier, Reward, Tier, TierChange, Voucher

pytestmark = pytest.mark.django_db

RU_HEADER = ["Магазин", "Номер чека", "Номер карты", "Дата покупки", "Сумма чека", "Артикул",
             "Категория", "Кол-во", "Сумма"]
EN_HEADER = ["store", "receipt", "card", "date", "total", "sku", "category", "qty", "amount"]


# ------------------------------------------------------------------ helpers


def csv_bytes(rows, *, delimiter=",", encoding="utf-8", bom=False) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    data = buffer.getvalue().encode(encoding)
    return (codecs.BOM_UTF8 + data) if bom else data


def xlsx_bytes(rows) -> bytes:
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def import_run(user, kind, content, *, name="file.csv", skip_bad_rows=False) -> ImportJob:
    job = ImportJob(
        kind=kind, original_name=name, file_size=len(content),
        file_sha256=hashlib.sha256(content).hexdigest(), skip_bad_rows=skip_bad_rows,
        created_by=user,
    )
    job.file.save(name, ContentFile(content), save=False)
    job.save()
    runner.import_job_preview(job)
    if job.status == ImportJob.Status.PREVIEWED:
        runner.import_job_confirm(job)
        runner.import_job_apply(job)
    return job


def db_state() -> dict:
    return {
        "members": Member.objects.count(),
        "purchases": Purchase.objects.count(),
        "lines": PurchaseLine.objects.count(),
        "ledger": PointsEntry.objects.count(),
        "balances": sorted(Member.objects.values_list("id", "points_balance")),
        "tiers": sorted(MemberTier.objects.values_list("member_id", "tier_id", "source")),
        "tier_changes": TierChange.objects.count(),
        "vouchers": sorted(Voucher.objects.values_list("id", "status", "used_at")),
    }




def error_of(job: ImportJob, row: int) -> dict:
    return next(error for error in job.errors if error["row"] == row)


def day(days_ago: int, fmt: str) -> str:
    return (timezone.localtime() - timedelta(days=days_ago)).strftime(fmt)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def shop(db):
    """Two stores, a category with double points, two members (one blocked)."""
    store = StoreFactory(code="MSK-001")
    StoreFactory(code="SPB-001")
    coffee = ProductCategory.objects.create(code="coffee", name="Кофе")
    EarningRule.objects.create(
        name="Coffee ×2", kind=EarningRule.Kind.CATEGORY, category=coffee,
        multiplier=Decimal(2),
    )
    anna = MemberFactory(card_number="1001", first_name="Анна")
    boris = MemberFactory(card_number="1002", first_name="Борис")
    return {"store": store, "coffee": coffee, "anna": anna, "boris": boris}


# ------------------------------------------------------------------ purchases


def test_purchases_from_russian_excel_csv_earn_points_by_the_rules(shop, admin_user):
    when = day(3, "%d.%m.%Y %H:%M")
    content = csv_bytes([
        RU_HEADER,
        ["MSK-001", "R-1", "1001", when, "1 500,00", "COF-1", "coffee", "1", "1 000,00"],
        ["MSK-001", "R-1", "1001", when, "1 500,00", "BAK-1", "", "2", "500,00"],
        ["SPB-001", "R-2", "1002", day(1, "%Y-%m-%d"), "", "DAI-1", "Кофе", "1,5", "200"],
        ["MSK-001", "R-3", "", day(2, "%d.%m.%Y"), "99,90", "", "", "", ""],
    ], delimiter=";", encoding="cp1251")
    job = import_run(admin_user, "purchases", content)
    assert job.status == ImportJob.Status.DONE, job.errors or job.message
    assert job.counts == {"new": 4, "updated": 0, "unchanged": 0, "error": 0}
    receipt = Purchase.objects.get(receipt_number="R-1")
    assert (receipt.total, receipt.item_count, receipt.member_id) == (
        Decimal("1500.00"), 3, shop["anna"].pk)
    assert receipt.purchased_at == timezone.make_aware(datetime.strptime(when, "%d.%m.%Y %H:%M"))
    assert list(receipt.lines.values_list("sku", "quantity", "amount", "category__code")) == [
        ("COF-1", Decimal("1.000"), Decimal("1000.00"), "coffee"),
        ("BAK-1", Decimal("2.000"), Decimal("500.00"), None),
    ]
    # 1,500 × 0.05 = 75, plus the coffee line's second 50: the same as at the till.
    accrual = PointsEntry.objects.get(purchase=receipt)
    assert (accrual.kind, accrual.amount, accrual.actor) == ("accrual", 125, admin_user)
    assert accrual.available_at is not None  # pending for the return window, as the rules say
    second = Purchase.objects.get(receipt_number="R-2")
    assert second.total == Decimal("200") and second.lines.get().quantity == Decimal("1.5")
    assert PointsEntry.objects.get(purchase=second).amount == 20  # category found by name
    assert not PointsEntry.objects.filter(purchase__receipt_number="R-3").exists()
    for member in (shop["anna"], shop["boris"]):
        member.refresh_from_db()
        assert member.points_balance == ledger_sum(member)
        assert member.last_purchase_at is not None


def test_purchases_from_utf8_bom_csv_with_commas_and_xlsx(shop, admin_user):
    content = csv_bytes([
        EN_HEADER, ["MSK-001", "E-1", "1001", day(5, "%Y-%m-%d %H:%M:%S"), "1,234.50", "S1", "",
                    "", "1234.50"],
    ], bom=True)
    job = import_run(admin_user, "purchases", content)
    assert job.status == ImportJob.Status.DONE, job.errors or job.message
    assert Purchase.objects.get(receipt_number="E-1").total == Decimal("1234.50")
    moment = timezone.localtime().replace(tzinfo=None, microsecond=0) - timedelta(days=1)
    workbook = xlsx_bytes([
        ["Магазин", "Чек", "Карта", "Дата", "Артикул", "Сумма"],
        ["MSK-001", 5001, 1002, moment, "S2", 300.1],
        ["MSK-001", 5001, 1002, moment, "S3", 99.9],
    ])
    job = import_run(admin_user, "purchases", workbook, name="receipts.xlsx")
    assert job.status == ImportJob.Status.DONE, job.errors or job.message
    receipt = Purchase.objects.get(receipt_number="5001")
    assert (receipt.total, receipt.lines.count()) == (Decimal("400.00"), 2)
    assert receipt.purchased_at == timezone.make_aware(moment)
    assert PointsEntry.objects.get(purchase=receipt).amount == 20


def test_same_purchases_file_twice_posts_points_once(shop, admin_user):
    content = csv_bytes([
        EN_HEADER,
        ["MSK-001", "T-1", "1001", day(1, "%d.%m.%Y"), "", "A", "", "", "1000"],
        ["MSK-001", "T-1", "1001", day(1, "%d.%m.%Y"), "", "B", "", "", "1000"],
        ["MSK-001", "T-2", "1002", day(1, "%d.%m.%Y"), "", "C", "", "", "300"],
    ])
    first = import_run(admin_user, "purchases", content)
    assert first.counts["new"] == 3
    state = db_state()
    ledger_rows = PointsEntry.objects.filter(kind=PointsEntry.Kind.ACCRUAL).count()
    second = import_run(admin_user, "purchases", content)
    assert second.status == ImportJob.Status.DONE
    assert second.counts == {"new": 0, "updated": 0, "unchanged": 3, "error": 0}
    assert db_state() == state
    assert ledger_rows == 2 == PointsEntry.objects.filter(kind="accrual").count()


def assert_refused(job: ImportJob, state: dict) -> None:
    assert job.status == ImportJob.Status.REJECTED
    assert "Nothing was imported: " in job.message
    assert db_state() == state


def test_unknown_member_store_and_category_are_row_errors_and_nothing_is_imported(
    shop, admin_user
):
    state = db_state()
    content = csv_bytes([
        RU_HEADER,
        ["MSK-001", "U-1", "1001", day(1, "%d.%m.%Y"), "", "A", "", "", "100"],
        ["MSK-001", "U-2", "9999", day(1, "%d.%m.%Y"), "", "A", "", "", "100"],
        ["XXX-001", "U-3", "1001", day(1, "%d.%m.%Y"), "", "A", "", "", "100"],
        ["MSK-001", "U-4", "1001", day(1, "%d.%m.%Y"), "", "A", "tea", "", "100"],
    ], delimiter=";")
    job = import_run(admin_user, "purchases", content)
    assert_refused(job, state)
    assert job.counts == {"new": 1, "updated": 0, "unchanged": 0, "error": 3}
    assert error_of(job, 3) == {"row": 3, "column": "Номер карты",
                                "message": "There is no member with the card number “9999”."}
    assert error_of(job, 4) == {"row": 4, "column": "Магазин",
                                "message": "There is no store with the code “XXX-001”."}
    assert error_of(job, 5) == {"row": 5, "column": "Категория",
                                "message": "There is no product category “tea”."}


def test_negative_amount_and_future_date_are_refused(shop, admin_user):
    state = db_state()
    tomorrow = (timezone.localtime() + timedelta(days=1)).strftime("%d.%m.%Y %H:%M")
    content = csv_bytes([
        EN_HEADER,
        ["MSK-001", "N-1", "1001", day(1, "%d.%m.%Y"), "", "A", "", "", "-100,50"],
        ["MSK-001", "N-2", "1001", tomorrow, "", "A", "", "", "100"],
        ["MSK-001", "N-3", "1001", day(1, "%d.%m.%Y"), "-5", "", "", "", ""],
    ])
    job = import_run(admin_user, "purchases", content)
    assert_refused(job, state)
    assert error_of(job, 2) == {
        "row": 2, "column": "amount",
        "message": "“-100,50” is negative; only zero or more is allowed here."}
    assert error_of(job, 3) == {"row": 3, "column": "date",
                                "message": f"“{tomorrow}” is in the future."}
    assert error_of(job, 4)["column"] == "total"


def test_a_receipts_rows_must_agree_and_follow_each_other(shop, admin_user):
    state = db_state()
    when = day(1, "%d.%m.%Y")
    content = csv_bytes([
        EN_HEADER,
        ["MSK-001", "G-1", "1001", when, "", "A", "", "", "100"],
        ["MSK-001", "G-1", "1002", when, "", "B", "", "", "100"],
        ["MSK-001", "G-2", "1001", when, "", "C", "", "", "100"],
        ["MSK-001", "G-3", "1001", when, "", "D", "", "", "100"],
        ["MSK-001", "G-2", "1001", when, "", "E", "", "", "100"],
        ["MSK-001", "G-4", "1001", when, "", "F", "", "", ""],
    ])
    job = import_run(admin_user, "purchases", content)
    assert_refused(job, state)
    assert error_of(job, 3) == {"row": 3, "column": "card",
                                "message": "Differs from row 2 of the same receipt, which "
                                           "says “1001”."}
    assert error_of(job, 6) == {"row": 6, "column": "store",
                                "message": "This receipt already appears on row 4 of the file."}
    assert error_of(job, 7) == {"row": 7, "column": "amount",
                                "message": "A receipt line needs both an SKU and an amount."}
    assert job.counts["error"] == 4  # both rows of G-1, the second G-2, G-4


def test_a_receipt_recorded_with_another_total_is_not_changed(shop, admin_user):
    services.purchase_record(store_id=shop["store"].pk, receipt_number="C-1",
                             total=Decimal("50"), member_id=shop["anna"].pk)
    state = db_state()
    content = csv_bytes([EN_HEADER, ["MSK-001", "C-1", "1001", day(1, "%d.%m.%Y"), "60", "", "",
                                     "", ""]])
    job = import_run(admin_user, "purchases", content)
    assert_refused(job, state)
    assert "already recorded with another total or member (total 50.00)" in job.errors[0][
        "message"]


def test_a_blocked_members_purchase_is_recorded_without_points(shop, admin_user):
    member_services.member_status_change(member_id=shop["boris"].pk, status="blocked",
                                         reason="Fraud check", actor=admin_user)
    content = csv_bytes([EN_HEADER, ["MSK-001", "B-1", "1002", day(1, "%d.%m.%Y"), "500", "",
                                     "", "", ""]])
    job = import_run(admin_user, "purchases", content)
    assert job.status == ImportJob.Status.DONE
    assert Purchase.objects.filter(receipt_number="B-1").exists()
    assert not PointsEntry.objects.filter(purchase__receipt_number="B-1").exists()


def test_skip_bad_rows_imports_good_receipts_and_returns_every_row_of_bad_ones(
    shop, admin_user
):
    when = day(1, "%d.%m.%Y")
    content = csv_bytes([
        RU_HEADER,
        ["MSK-001", "S-1", "1001", when, "", "A", "", "", "1000"],
        ["MSK-001", "S-2", "1001", when, "", "B", "", "", "200"],
        ["MSK-001", "S-2", "1001", when, "", "C", "", "", "-1"],
        ["MSK-001", "S-3", "7777", when, "", "D", "", "", "+300"],
        ["MSK-001", "S-4", "1002", when, "", "E", "", "", "400"],
    ], delimiter=";")
    job = import_run(admin_user, "purchases", content, skip_bad_rows=True)
    assert job.status == ImportJob.Status.DONE
    assert job.counts == {"new": 2, "updated": 0, "unchanged": 0, "error": 3}
    assert set(Purchase.objects.values_list("receipt_number", flat=True)) == {"S-1", "S-4"}
    assert PointsEntry.objects.filter(kind="accrual").count() == 2
    with job.rejected_file.open("rb") as rejected:
        rows = list(csv.reader(io.StringIO(rejected.read().decode("utf-8-sig")), delimiter=";"))
    assert rows[0] == RU_HEADER + ["row", "reason"]
    assert [(row[1], row[8], row[9]) for row in rows[1:]] == [
        ("S-2", "200", "3"), ("S-2", "'-1", "4"), ("S-3", "'+300", "5"),
    ]
    assert rows[1][10] == "Not imported because row 4 of the same receipt has an error."
    assert "is negative" in rows[2][10]
    assert rows[3][10] == "There is no member with the card number “7777”."


def test_purchase_import_that_dies_continues_without_double_receipts_or_points(
    shop, admin_user, monkeypatch
):
    monkeypatch.setattr(runner, "BATCH_ROWS", 2)
    monkeypatch.setattr(PurchasesKind, "batch_rows", 2)  # the kind's own size, if read
    when = day(1, "%d.%m.%Y")
    rows = [EN_HEADER] + [["MSK-001", f"K-{i}", "1001", when, "", "A", "", "", "100"]
                          for i in range(7)]
    content = csv_bytes(rows)
    original = runner._batch_apply
    calls = {"n": 0}

    def dying(kind, batch, job):
        calls["n"] += 1
        if calls["n"] == 3:
            raise SystemExit("worker killed")
        original(kind, batch, job)

    monkeypatch.setattr(runner, "_batch_apply", dying)
    with pytest.raises(SystemExit):
        import_run(admin_user, "purchases", content, skip_bad_rows=True)
    job = ImportJob.objects.get()
    assert (job.status, job.rows_done) == (ImportJob.Status.IMPORTING, 4)
    assert Purchase.objects.count() == 4
    monkeypatch.setattr(runner, "_batch_apply", original)
    runner.import_job_apply(job)
    assert job.status == ImportJob.Status.DONE
    assert job.counts == {"new": 7, "updated": 0, "unchanged": 0, "error": 0}
    assert Purchase.objects.count() == 7
    assert PointsEntry.objects.filter(kind="accrual").count() == 7
    anna = shop["anna"]
    anna.refresh_from_db()
    assert anna.points_balance == 35 == ledger_sum(anna)


# ------------------------------------------------------------------ voucher uses


@pytest.fixture
def vouchers(shop):
    """Two issued vouchers of Anna's and a cancelled one, issued two days ago.

    Made directly: ``reward_redeem`` cannot run on PostgreSQL now (its SELECT ... FOR
    UPDATE joins the nullable tier; reported), and a voucher use moves no points.
    """
    reward = Reward.objects.create(name="Coffee", kind=Reward.Kind.GIFT, points_cost=10)
    issued_at = timezone.now() - timedelta(days=2)
    made = [
        Voucher.objects.create(
            code=services.voucher_code_generate(), reward=reward, member=shop["anna"],
            issued_at=issued_at, expires_at=issued_at + timedelta(days=90),
            idempotency_key=f"v-{i}",
        )
        for i in range(3)
    ]
    Voucher.objects.filter(pk=made[2].pk).update(status=Voucher.Status.CANCELLED)
    return made


def test_voucher_uses_mark_vouchers_used_once(vouchers, shop, admin_user):
    issued, other, cancelled = vouchers
    used_at = day(0, "%d.%m.%Y %H:%M")
    content = csv_bytes([
        ["Код ваучера", "Дата использования", "Номер карты"],
        [issued.code.lower(), used_at, "1001"],
    ], delimiter=";")
    job = import_run(admin_user, "voucher_uses", content)
    assert job.status == ImportJob.Status.DONE, job.errors
    issued.refresh_from_db()
    assert issued.status == Voucher.Status.USED
    assert timezone.localtime(issued.used_at).strftime("%d.%m.%Y %H:%M") == used_at
    state = db_state()
    again = import_run(admin_user, "voucher_uses", content)
    assert again.counts == {"new": 0, "updated": 0, "unchanged": 1, "error": 0}
    assert db_state() == state


def test_voucher_uses_refuse_unknown_cancelled_and_foreign_vouchers(vouchers, shop, admin_user):
    issued, other, cancelled = vouchers
    state = db_state()
    content = csv_bytes([
        ["voucher code", "card"],
        ["NOPE-NOPE-NOPE", ""],
        [cancelled.code, ""],
        [other.code, "1002"],
    ])
    job = import_run(admin_user, "voucher_uses", content)
    assert_refused(job, state)
    assert error_of(job, 2)["message"] == "There is no voucher with the code “NOPE-NOPE-NOPE”."
    assert error_of(job, 3) == {
        "row": 3, "column": "voucher code",
        "message": "Only an issued voucher can be used; this one is cancelled."}
    assert error_of(job, 4) == {"row": 4, "column": "card",
                                "message": "This voucher belongs to another member."}


# ------------------------------------------------------------------ opening balances


@pytest.fixture
def tiers(db):
    return {
        name: Tier.objects.create(name=name, rank=rank, threshold=threshold)
        for name, rank, threshold in (("Bronze", 0, 0), ("Silver", 1, 10000), ("Gold", 2, 50000))
    }


def test_opening_balances_and_tiers_are_posted_once(shop, tiers, admin_user):
    content = csv_bytes([
        ["Номер карты", "Баланс баллов", "Уровень"],
        ["1001", "1 500", "gold"],
        ["1002", "0", "Silver"],
    ], delimiter=";", encoding="cp1251")
    job = import_run(admin_user, "opening_balances", content)
    assert job.status == ImportJob.Status.DONE, job.errors or job.message
    assert job.counts == {"new": 1, "updated": 1, "unchanged": 0, "error": 0}
    entry = PointsEntry.objects.get(kind=PointsEntry.Kind.OPENING)
    assert (entry.member, entry.amount, entry.idempotency_key, entry.reason) == (
        shop["anna"], 1500, "opening:1001", "Migrated")
    anna_tier = MemberTier.objects.get(member=shop["anna"])
    assert (anna_tier.tier.name, anna_tier.source) == ("Gold", MemberTier.Source.MANUAL)
    change = TierChange.objects.get(member=shop["anna"])
    assert (change.reason, change.note, change.actor) == ("manual", "Migrated", admin_user)
    assert MemberTier.objects.get(member=shop["boris"]).tier.name == "Silver"
    shop["anna"].refresh_from_db()
    assert shop["anna"].points_balance == 1500 == ledger_sum(shop["anna"])
    state = db_state()
    again = import_run(admin_user, "opening_balances", content)
    assert again.counts == {"new": 0, "updated": 0, "unchanged": 2, "error": 0}
    assert db_state() == state


def test_opening_balances_refuse_what_would_be_wrong(shop, tiers, admin_user):
    MemberFactory(card_number="1003")
    import_run(admin_user, "opening_balances", csv_bytes([["card", "points"], ["1001", "100"]]))
    member_services.member_status_change(member_id=shop["boris"].pk, status="blocked",
                                         reason="Fraud check", actor=admin_user)
    state = db_state()
    content = csv_bytes([
        ["card", "points", "tier"],
        ["1001", "200", ""],
        ["1002", "50", ""],
        ["9999", "50", ""],
        ["1003", "-5", "Platinum"],
    ])
    job = import_run(admin_user, "opening_balances", content)
    assert_refused(job, state)
    assert "An opening balance of 100 points was already posted" in error_of(job, 2)["message"]
    assert error_of(job, 3)["message"].startswith("The member is blocked")
    assert error_of(job, 4)["column"] == "card"
    assert {e["column"] for e in job.errors if e["row"] == 5} == {"points", "tier"}
    assert "the tiers are: Bronze, Silver, Gold" in [
        e for e in job.errors if e["row"] == 5 and e["column"] == "tier"][0]["message"]


# ------------------------------------------------------------------ redemptions


def test_same_redemption_file_twice_debits_and_issues_once(shop, admin_user):
    anna, boris = shop["anna"], shop["boris"]
    for member in (anna, boris):
        member_services.points_post(member_id=member.pk, amount=1000, kind="welcome",
                                    idempotency_key=f"start:{member.pk}")
    reward = Reward.objects.create(name="Free coffee", kind=Reward.Kind.GIFT,
                                   points_cost=300, stock=5)
    content = csv_bytes([
        ["Номер операции", "Номер карты", "Награда"],
        ["POS-1", "1001", "free coffee"],
        ["POS-2", "1002", str(reward.pk)],
        ["POS-3", "1001", "Free coffee"],
    ], delimiter=";", encoding="cp1251")

    first = import_run(admin_user, "redemptions", content)
    assert first.status == ImportJob.Status.DONE, (first.message, first.errors)
    assert first.counts["new"] == 3
    anna.refresh_from_db()
    boris.refresh_from_db()
    reward.refresh_from_db()
    # Anna: 1,000 − 2 × 300 = 400; Boris: 1,000 − 300 = 700; stock 5 − 3 = 2.
    assert (anna.points_balance, boris.points_balance, reward.stock) == (400, 700, 2)
    assert Voucher.objects.filter(reward=reward).count() == 3

    state = db_state()
    second = import_run(admin_user, "redemptions", content)
    assert second.status == ImportJob.Status.DONE
    assert second.counts["unchanged"] == 3 and second.counts.get("new", 0) == 0
    assert db_state() == state


def test_redemption_the_rules_refuse_imports_nothing(shop, admin_user):
    reward = Reward.objects.create(name="Thermos", kind=Reward.Kind.GIFT, points_cost=300)
    state = db_state()
    content = csv_bytes([
        ["reference", "card number", "reward"],
        ["POS-9", "1001", "Thermos"],  # Anna has no points
        ["POS-10", "1001", "Umbrella"],  # no such reward
    ])
    job = import_run(admin_user, "redemptions", content)
    assert job.status in (ImportJob.Status.REJECTED, ImportJob.Status.FAILED)
    assert "There is no reward “Umbrella”." in error_of(job, 3)["message"]
    assert db_state() == state
    assert reward.vouchers.count() == 0
