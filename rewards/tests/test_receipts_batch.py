"""Receipts recorded in batches give exactly what recording them one by one gives.

One generated file of receipts is imported twice into the same starting state (rolled
back in between): once receipt by receipt through
:func:`rewards.services.purchase_record` (the import's old path), once in batches through
:func:`rewards.receipts.purchases_record_batch`, in chunks small enough that members'
receipts fall into several batches. Ledger, balances, tiers and their history, stamp
vouchers and referrals must come out the same.
"""

import csv
import hashlib
import io
import random
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from members import services as member_services
from members.importing import runner
from members.models import ImportJob, Member, PointsEntry, ProductCategory, Purchase, TierWindow
from members.services import PurchaseLineData
from members.tests.factories import MemberFactory, StoreFactory, ledger_sum
from rewards import engine, receipts, services
from rewards.importing import PurchasesKind
from rewards.models import EarningRule, MemberTier, Referral, TierChange, Voucher
from rewards.receipts import ReceiptData, purchases_record_batch
from rewards.tests.factories import (
    CategoryMultiplierFactory,
    EarningRuleFactory,
    ExclusionFactory,
    SkuMultiplierFactory,
    StampRuleFactory,
    TierFactory,
    programme,
)

pytestmark = pytest.mark.django_db

HEADER = ["store", "receipt", "card", "date", "total", "sku", "category", "qty", "amount"]


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def ago(**delta):
    return timezone.now() - timedelta(**delta)


def world(*, basis: str, window: str) -> dict:
    """A programme with every rule a receipt can meet, and members in every situation."""
    programme(tier_basis=basis, tier_window=window, tier_window_months=12,
              return_window_days=14, referral_referrer_points=200,
              referral_referred_points=100, referral_min_purchase=Decimal("500"))
    store = StoreFactory(code="MSK-001")
    coffee = ProductCategory.objects.create(code="coffee", name="Кофе")
    tech = ProductCategory.objects.create(code="tech", name="Техника")
    bakery = ProductCategory.objects.create(code="bakery", name="Выпечка")
    EarningRuleFactory(min_purchase=Decimal("100"))
    CategoryMultiplierFactory(category=coffee, multiplier=Decimal("2"))
    ExclusionFactory(category=tech)
    SkuMultiplierFactory(sku="SKU-GOLD", multiplier=Decimal("3"))
    # A bakery promotion that ended 20 days ago: receipts before and after differ.
    CategoryMultiplierFactory(category=bakery, multiplier=Decimal("3"),
                              valid_until=timezone.localdate() - timedelta(days=20))
    scale = Decimal(1) if basis == "spend" else Decimal("0.06")
    bronze = TierFactory(name="Bronze", rank=0, threshold=Decimal(0))
    silver = TierFactory(name="Silver", rank=1, threshold=Decimal(20000) * scale,
                         earn_multiplier=Decimal("1.25"))
    gold = TierFactory(name="Gold", rank=2, threshold=Decimal(60000) * scale,
                       earn_multiplier=Decimal("1.5"))
    TierFactory(name="Platinum", rank=3, threshold=Decimal(0), invitation_only=True,
                earn_multiplier=Decimal(2))
    StampRuleFactory(name="Every 3rd purchase", every=3,
                     starts_on=timezone.localdate() - timedelta(days=40))
    StampRuleFactory(name="Every 2nd coffee", every=2, category=coffee,
                     starts_on=timezone.localdate() - timedelta(days=90))
    names = ("anna", "boris", "vera", "gleb", "dina", "egor", "fedor", "zoya")
    members = {name: MemberFactory(card_number=f"10{i:02d}") for i, name in enumerate(names)}
    # Anna: no tier yet, a history partly outside the 12-month window.
    for number, when, total in (("H-1", ago(days=400), "45000"), ("H-2", ago(days=200), "15000"),
                                ("H-3", ago(days=35), "700")):
        services.purchase_record(store_id=store.pk, receipt_number=number, total=Decimal(total),
                                 purchased_at=when, member_id=members["anna"].pk)
    MemberTier.objects.filter(member=members["anna"]).delete()
    # Boris: Bronze, below it since last week (a purchase at Bronze level clears that).
    MemberTier.objects.update_or_create(member=members["boris"], defaults={
        "tier": bronze, "below_since": timezone.localdate() - timedelta(days=7)})
    # Vera: Platinum by hand for another month; Gleb: Gold by hand, ended last week.
    MemberTier.objects.update_or_create(member=members["vera"], defaults={
        "tier": gold, "source": MemberTier.Source.MANUAL,
        "manual_until": timezone.localdate() + timedelta(days=30)})
    MemberTier.objects.update_or_create(member=members["gleb"], defaults={
        "tier": silver, "source": MemberTier.Source.MANUAL,
        "manual_until": timezone.localdate() - timedelta(days=7)})
    # Egor was brought by Anna, Fedor by Dina, who is blocked: she earns nothing for it.
    Referral.objects.create(referrer=members["anna"], referred=members["egor"])
    Referral.objects.create(referrer=members["dina"], referred=members["fedor"])
    member_services.member_status_change(member_id=members["dina"].pk, status="blocked",
                                         reason="Fraud check", actor=None)
    return {"store": store, "members": members}


def receipts_file(cards: list[str], *, count: int, seed: int) -> bytes:
    """Receipts over the last 60 days in no particular time order, 1-3 lines each."""
    rng = random.Random(seed)
    rows = [HEADER, ["MSK-001", "H-3", "1000", ago(days=35).strftime("%d.%m.%Y %H:%M"), "700",
                     "", "", "", ""]]  # recorded before: left as it is
    for number in range(count):
        card = rng.choice(cards + [""])
        when = timezone.localtime(ago(minutes=rng.randint(5, 60 * 24 * 60)))
        for line in range(rng.randint(1, 3)):
            rows.append([
                "MSK-001", f"B-{number}", card, when.strftime("%d.%m.%Y %H:%M"), "",
                rng.choice(["SKU-GOLD", f"SKU-{line}"]),
                rng.choice(["coffee", "tech", "bakery", ""]), str(rng.randint(1, 3)),
                f"{rng.randint(50, 18000)},{rng.randint(0, 99):02d}",
            ])
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";").writerows(rows)
    return buffer.getvalue().encode()


def import_run(user, content: bytes) -> ImportJob:
    job = ImportJob(kind="purchases", original_name="receipts.csv", file_size=len(content),
                    file_sha256=hashlib.sha256(content).hexdigest(), created_by=user)
    job.file.save("receipts.csv", ContentFile(content), save=False)
    job.save()
    runner.import_job_preview(job)
    runner.import_job_confirm(job)
    runner.import_job_apply(job)
    assert job.status == ImportJob.Status.DONE, (job.message, job.errors)
    return job


def state() -> dict:
    """The programme's outcome by stable names (ids differ between the two runs)."""
    receipt = dict(Purchase.objects.values_list("id", "receipt_number"))
    card = dict(Member.objects.values_list("id", "card_number"))

    def named(text: str) -> str:
        kind, _sep, rest = text.partition(":")
        return f"{kind}:{receipt[int(rest)]}" if kind == "purchase" else text

    return {
        "balances": {card[pk]: (balance, last) for pk, balance, last in Member.objects
                     .values_list("id", "points_balance", "last_purchase_at")},
        "ledger": [
            (card[e.member_id], e.kind, e.amount, e.balance_after, named(e.idempotency_key),
             named(e.reference), e.details, e.available_at,
             e.created_at if e.kind == "accrual" else None, e.actor_id)
            for e in PointsEntry.objects.order_by("member_id", "id")
        ],
        "purchases": sorted(
            (number, card.get(member_id), total, item_count, at,
             list(Purchase.objects.get(receipt_number=number).lines.order_by("id")
                  .values_list("sku", "category__code", "quantity", "amount")))
            for number, member_id, total, item_count, at in Purchase.objects.values_list(
                "receipt_number", "member_id", "total", "item_count", "purchased_at")
        ),
        "tiers": sorted(
            (card[t.member_id], t.tier.name, t.source, t.manual_until, t.below_since)
            for t in MemberTier.objects.select_related("tier")
        ),
        "tier_history": [
            (card[c.member_id], c.from_tier and c.from_tier.name, c.to_tier.name, c.reason)
            for c in TierChange.objects.select_related("from_tier", "to_tier").order_by("id")
        ],
        "vouchers": sorted(
            (card[v.member_id], v.reward.name, v.source, receipt[v.purchase_id],
             v.idempotency_key.rsplit(":", 1)[0], v.expires_at - v.issued_at)
            for v in Voucher.objects.select_related("reward")
        ),
        "referrals": sorted(Referral.objects.values_list(
            "referrer__card_number", "referred__card_number", "status")),
    }


@pytest.mark.parametrize(("basis", "window", "set_based"), [
    ("spend", TierWindow.ROLLING, True),
    ("points", TierWindow.CALENDAR_YEAR, True),
    ("spend", TierWindow.LIFETIME, False),
    ("points", TierWindow.ROLLING, False),
])
def test_a_file_imported_in_batches_gives_exactly_what_one_by_one_gives(
    basis, window, set_based, admin_user, monkeypatch
):
    shop = world(basis=basis, window=window)
    members = shop["members"]
    # A campaign doubling Anna's and Boris's points for the last ten days.
    doubled = {members["anna"].pk, members["boris"].pk}

    def double_days(member_ids, at):
        if at < ago(days=10):
            return {}
        return {pk: (Decimal(2), "Double days") for pk in member_ids if pk in doubled}

    monkeypatch.setattr(engine, "_bonus_multiplier_lookups", [double_days])
    if not set_based:
        monkeypatch.setattr(receipts, "set_based", lambda: False)
    content = receipts_file([m.card_number for m in members.values()], count=60, seed=11)

    with transaction.atomic():
        monkeypatch.setattr(PurchasesKind, "apply", PurchasesKind._apply_one_by_one)
        one_by_one = import_run(admin_user, content)
        expected = state()
        transaction.set_rollback(True)
    monkeypatch.undo()
    monkeypatch.setattr(engine, "_bonus_multiplier_lookups", [double_days])
    if not set_based:
        monkeypatch.setattr(receipts, "set_based", lambda: False)
    # Members' receipts span several batches (the runner's size, or the kind's own).
    monkeypatch.setattr(runner, "BATCH_ROWS", 9)
    monkeypatch.setattr(PurchasesKind, "batch_rows", 9)
    batched = import_run(admin_user, content)
    got = state()

    assert batched.counts == one_by_one.counts
    assert batched.counts["unchanged"] == 1 and batched.counts["error"] == 0
    for part in expected:
        assert got[part] == expected[part], part
    # The example exercises every rule it is meant to.
    kinds = {entry[1] for entry in got["ledger"]}
    assert kinds == {"accrual", "referral"}
    assert any(change[3] == "qualified" and change[1] for change in got["tier_history"])
    assert {v[1] for v in got["vouchers"]} == {"Free coffee"} and len(got["vouchers"]) >= 2
    assert ("1004", "1006", "rewarded") in got["referrals"]  # Dina blocked: Fedor's alone
    assert not PointsEntry.objects.filter(member=members["dina"]).exists()
    for member in Member.objects.all():
        assert member.points_balance == ledger_sum(member)


def test_batch_records_each_receipt_once_and_returns_what_it_created():
    store = StoreFactory(code="MSK-001")
    member = MemberFactory()
    when = ago(days=1)
    batch = [
        ReceiptData(store_id=store.pk, receipt_number=f"R-{i}", total=Decimal("1000"),
                    purchased_at=when, member_id=member.pk,
                    lines=[PurchaseLineData(sku="A", amount=Decimal("1000"))])
        for i in range(3)
    ]
    first = purchases_record_batch(receipts=batch)
    again = purchases_record_batch(receipts=batch[1:] + [
        ReceiptData(store_id=store.pk, receipt_number="R-9", total=Decimal("200"),
                    purchased_at=when, member_id=member.pk)])
    assert first.created == [True, True, True] and first.accruals == 3
    assert again.created == [False, False, True] and again.accruals == 1
    assert again.purchase_ids[:2] == first.purchase_ids[1:]
    member.refresh_from_db()
    # 3 × (1,000 × 0.05) + 200 × 0.05, each pending for the return window.
    assert member.points_balance == 160 == ledger_sum(member)
    assert member.last_purchase_at == when
    assert PointsEntry.objects.filter(idempotency_key=f"purchase:{first.purchase_ids[0]}",
                                      available_at__isnull=False).exists()
    assert purchases_record_batch(receipts=[]).created == []
    with pytest.raises(ValueError, match="appears twice"):
        purchases_record_batch(receipts=[batch[0], batch[0]])


def test_batch_queries_do_not_grow_with_the_number_of_receipts(
    django_assert_max_num_queries, monkeypatch
):
    if not receipts.set_based():
        pytest.skip("The portable path (SQLite) reads per receipt; speed there does not matter.")
    # Campaign lookups answer one moment at a time: counted in the next test.
    monkeypatch.setattr(engine, "_bonus_multiplier_lookups", [])
    store = StoreFactory(code="MSK-001")
    members = [MemberFactory() for _ in range(30)]
    TierFactory(name="Bronze", rank=0, threshold=Decimal(0))
    TierFactory(name="Silver", rank=1, threshold=Decimal(3000))
    StampRuleFactory(every=2, starts_on=timezone.localdate() - timedelta(days=30))
    EarningRule.objects.create(name="Base", kind=EarningRule.Kind.BASE,
                               points_per_unit=Decimal("0.05"))
    batch = [
        ReceiptData(store_id=store.pk, receipt_number=f"Q-{i}", total=Decimal(500 + i * 100),
                    purchased_at=ago(days=i % 20, minutes=i), member_id=members[i % 30].pk,
                    lines=[PurchaseLineData(sku="A", amount=Decimal(500 + i * 100))])
        for i in range(120)
    ]
    with django_assert_max_num_queries(30):
        recording = purchases_record_batch(receipts=batch)
    assert all(recording.created) and recording.accruals == 120
    assert recording.tier_changes >= 30 and recording.vouchers >= 30


def test_campaign_multipliers_come_in_one_call_when_the_engine_offers_it(monkeypatch):
    store = StoreFactory(code="MSK-001")
    anna, boris = MemberFactory(), MemberFactory()
    asked = []

    def many(*, moments):
        asked.append(list(moments))
        return {(anna.pk, moment): (Decimal(3), "Triple week") for _pk, moment in moments}

    monkeypatch.setattr(engine, "bonus_multipliers_get_many", many, raising=False)
    first, second = ago(days=2), ago(days=1)
    recording = purchases_record_batch(receipts=[
        ReceiptData(store_id=store.pk, receipt_number="M-1", total=Decimal("1000"),
                    purchased_at=first, member_id=anna.pk),
        ReceiptData(store_id=store.pk, receipt_number="M-2", total=Decimal("1000"),
                    purchased_at=second, member_id=anna.pk),
        ReceiptData(store_id=store.pk, receipt_number="M-3", total=Decimal("1000"),
                    purchased_at=second, member_id=boris.pk),
    ])
    assert recording.points == 150 + 150 + 50  # Anna's receipts tripled, Boris's not
    assert len(asked) == 1
    assert sorted(asked[0]) == sorted([(anna.pk, first), (anna.pk, second), (boris.pk, second)])
    step = PointsEntry.objects.filter(member=anna).first().details[-2]
    assert step == {"step": "campaign", "rule": "Triple week", "multiplier": "3",
                    "points": "100.00"}


def test_an_unforeseen_refusal_falls_back_to_receipt_by_receipt(admin_user, monkeypatch):
    StoreFactory(code="MSK-001")
    anna = MemberFactory(card_number="1001")

    def refusing(**kwargs):
        raise member_services.PointsRefused("Refused for the test", code="test")

    monkeypatch.setattr("rewards.importing.purchases_record_batch", refusing)
    content = "store;receipt;card;date;total\nMSK-001;F-1;1001;{};500\n".format(
        ago(days=1).strftime("%d.%m.%Y")).encode()
    job = import_run(admin_user, content)
    assert job.counts["new"] == 1
    assert PointsEntry.objects.get(member=anna).amount == 25
