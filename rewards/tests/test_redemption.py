"""Redeeming rewards: points and stock move together, refusals change nothing."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from members.models import Member, PointsEntry
from members.selectors import ledger_mismatches
from members.services import PointsRefused, member_status_change
from members.tests.concurrency import run_in_threads
from members.tests.factories import MemberFactory, points_give
from rewards import services
from rewards.models import Reward, Voucher
from rewards.tests.factories import (
    MemberTierFactory,
    RewardFactory,
    UserFactory,
    balance,
    buy,
    ledger_sum,
    programme,
    standard_tiers,
)

CODE = re.compile(r"^[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{4}-[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{4}"
                  r"-[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{4}$")




def redeem(member, reward, key=None, actor=None) -> Voucher:
    return services.reward_redeem(member_id=member.pk, reward_id=reward.pk, actor=actor,
                                  idempotency_key=key or f"redeem:{member.pk}:{reward.pk}")


def snapshot(member, reward) -> tuple:
    """Everything a refusal must leave as it was."""
    reward.refresh_from_db()
    return (balance(member), reward.stock, Voucher.objects.count(),
            PointsEntry.objects.filter(member=member).count())


# ------------------------------------------------------------------ concurrency


@pytest.mark.django_db(transaction=True)
def test_fifty_members_racing_for_ten_gifts_get_exactly_ten_vouchers():
    reward = RewardFactory(kind=Reward.Kind.GIFT, points_cost=100, stock=10)
    members = [MemberFactory() for _ in range(50)]
    for member in members:
        points_give(member, 150, key=f"start:{member.pk}")

    results = run_in_threads(50, lambda i: redeem(members[i], reward, key=f"race:{i}"))

    vouchers = [r for r in results if isinstance(r, Voucher)]
    refused = [r for r in results if isinstance(r, PointsRefused)]
    assert (len(vouchers), len(refused)) == (10, 40), results
    assert {r.code for r in refused} == {"out_of_stock"}
    reward.refresh_from_db()
    assert reward.stock == 0
    assert Voucher.objects.count() == 10
    assert len({v.member_id for v in vouchers}) == 10
    # Winners have 150 − 100 = 50 left, the others their 150; nobody below zero.
    balances = sorted(Member.objects.filter(pk__in=[m.pk for m in members])
                      .values_list("points_balance", flat=True))
    assert balances == [50] * 10 + [150] * 40
    assert not list(ledger_mismatches())


@pytest.mark.django_db(transaction=True)
def test_one_member_with_points_for_three_redeeming_ten_times_at_once_gets_three():
    reward = RewardFactory(points_cost=100, stock=None)
    member = MemberFactory()
    points_give(member, 350, key="start")  # enough for 3 × 100, not 4

    results = run_in_threads(10, lambda i: redeem(member, reward, key=f"click:{i}"))

    vouchers = [r for r in results if isinstance(r, Voucher)]
    refused = [r for r in results if isinstance(r, PointsRefused)]
    assert (len(vouchers), len(refused)) == (3, 7), results
    assert {r.code for r in refused} == {"insufficient_points"}
    assert balance(member) == 50 == ledger_sum(member)  # 350 − 3 × 100
    assert Voucher.objects.filter(member=member).count() == 3
    assert not list(ledger_mismatches())


# ------------------------------------------------------------------ redeeming


@pytest.mark.django_db
def test_redeeming_debits_the_points_and_issues_a_voucher_in_one_go():
    support = UserFactory(username="support")
    reward = RewardFactory(kind=Reward.Kind.GIFT, name="Mug", points_cost=120, stock=5,
                           voucher_valid_days=30)
    member = MemberFactory()
    points_give(member, 200, key="start")

    voucher = redeem(member, reward, actor=support)

    assert CODE.match(voucher.code)
    assert voucher.status == Voucher.Status.ISSUED
    assert voucher.fulfilment == Voucher.Fulfilment.TO_SHIP  # a physical gift
    assert voucher.expires_at == voucher.issued_at + timedelta(days=30)
    assert voucher.issued_by == support
    entry = voucher.redemption_entry
    assert (entry.kind, entry.amount, entry.balance_after) == ("redemption", -120, 80)
    assert balance(member) == 80 == ledger_sum(member)  # 200 − 120
    reward.refresh_from_db()
    assert reward.stock == 4


@pytest.mark.django_db
def test_voucher_codes_are_unique_and_hard_to_guess():
    reward = RewardFactory(points_cost=1)
    member = MemberFactory()
    points_give(member, 40, key="start")
    codes = [redeem(member, reward, key=f"k{i}").code for i in range(40)]
    assert len(set(codes)) == 40
    assert all(CODE.match(code) for code in codes)
    generated = {services.voucher_code_generate() for _ in range(5000)}
    assert len(generated) == 5000  # 31^12 ≈ 7.9 × 10^17 codes: no collision expected
    assert all(CODE.match(code) for code in generated)


@pytest.mark.django_db
def test_same_idempotency_key_twice_issues_one_voucher():
    reward = RewardFactory(points_cost=100, stock=3)
    member = MemberFactory()
    points_give(member, 500, key="start")
    first = redeem(member, reward, key="pos-import:row-17")
    second = redeem(member, reward, key="pos-import:row-17")
    assert second.pk == first.pk
    assert Voucher.objects.count() == 1
    assert balance(member) == 400
    reward.refresh_from_db()
    assert reward.stock == 2


@pytest.mark.django_db
def test_pending_points_cannot_be_spent_until_the_return_window_ends():
    programme(return_window_days=14)
    reward = RewardFactory(points_cost=40)
    member = MemberFactory()
    buy(member, "1000")  # 50 points, pending for 14 days
    before = snapshot(member, reward)

    with pytest.raises(PointsRefused) as refusal:
        redeem(member, reward, key="too-early")
    assert refusal.value.code == "insufficient_points"
    assert str(refusal.value) == (
        "Not enough points: 0 are available (50 more are pending until their return window "
        "ends) and this would take away 40."
    )
    assert snapshot(member, reward) == before

    # A purchase made 15 days ago is past its window: its 100 points can be spent.
    buy(member, "2000", when=timezone.now() - timedelta(days=15))
    voucher = redeem(member, reward, key="in-time")
    assert voucher.redemption_entry.amount == -40
    assert balance(member) == 110  # 50 pending + 100 − 40


# ------------------------------------------------------------------ refusals


@pytest.mark.django_db
def test_out_of_stock_is_refused_and_changes_nothing():
    reward = RewardFactory(stock=0)
    member = MemberFactory()
    points_give(member, 500, key="start")
    before = snapshot(member, reward)
    with pytest.raises(PointsRefused) as refusal:
        redeem(member, reward)
    assert refusal.value.code == "out_of_stock"
    assert str(refusal.value) == "This reward is out of stock."
    assert snapshot(member, reward) == before


@pytest.mark.django_db
def test_over_the_per_member_limit_is_refused_but_a_cancelled_one_does_not_count():
    reward = RewardFactory(points_cost=100, per_member_limit=2, stock=10)
    member = MemberFactory()
    points_give(member, 1000, key="start")
    first = redeem(member, reward, key="1")
    redeem(member, reward, key="2")
    before = snapshot(member, reward)  # 800 points, stock 8, 2 vouchers
    with pytest.raises(PointsRefused) as refusal:
        redeem(member, reward, key="3")
    assert refusal.value.code == "limit_reached"
    assert "2 time(s)" in str(refusal.value)
    assert snapshot(member, reward) == before
    # Another member is not limited by this one's vouchers.
    other = MemberFactory()
    points_give(other, 100, key="other")
    redeem(other, reward, key="other:1")
    # Cancelling one frees a place under the limit.
    services.voucher_cancel(voucher_id=first.pk, reason="Wrong size", actor=None)
    assert redeem(member, reward, key="4").status == Voucher.Status.ISSUED


@pytest.mark.django_db
def test_reward_for_a_higher_tier_is_refused_and_changes_nothing():
    _bronze, silver, gold = standard_tiers()
    reward = RewardFactory(min_tier=gold, stock=5)
    member = MemberTierFactory(tier=silver).member
    untiered = MemberFactory()
    for who in (member, untiered):
        points_give(who, 500, key=f"start:{who.pk}")
        before = snapshot(who, reward)
        with pytest.raises(PointsRefused) as refusal:
            redeem(who, reward)
        assert refusal.value.code == "wrong_tier"
        assert str(refusal.value) == "This reward is for Gold members and above."
        assert snapshot(who, reward) == before
    gold_member = MemberTierFactory(tier=gold).member
    points_give(gold_member, 500, key="gold")
    assert redeem(gold_member, reward).status == Voucher.Status.ISSUED


@pytest.mark.django_db
def test_blocked_member_cannot_redeem_and_nothing_changes():
    reward = RewardFactory(stock=5)
    member = MemberFactory()
    points_give(member, 500, key="start")
    member_status_change(member_id=member.pk, status=Member.Status.BLOCKED,
                         reason="Fraud check", actor=None)
    before = snapshot(member, reward)
    with pytest.raises(PointsRefused) as refusal:
        redeem(member, reward)
    assert refusal.value.code == "member_not_active"
    assert snapshot(member, reward) == before


@pytest.mark.django_db
def test_too_few_points_is_refused_and_changes_nothing():
    reward = RewardFactory(points_cost=300, stock=5)
    member = MemberFactory()
    points_give(member, 299, key="start")
    before = snapshot(member, reward)
    with pytest.raises(PointsRefused) as refusal:
        redeem(member, reward)
    assert refusal.value.code == "insufficient_points"
    assert "the balance is 299 and this would take away 300" in str(refusal.value)
    assert snapshot(member, reward) == before


@pytest.mark.parametrize(
    "window",
    [
        {"is_active": False},
        {"available_until": -1},  # ended yesterday
        {"available_from": 1},  # starts tomorrow
    ],
)
@pytest.mark.django_db
def test_inactive_or_out_of_window_reward_is_refused_and_changes_nothing(window):
    today = timezone.localdate()
    fields = {name: (today + timedelta(days=value) if name != "is_active" else value)
              for name, value in window.items()}
    reward = RewardFactory(stock=5, **fields)
    member = MemberFactory()
    points_give(member, 500, key="start")
    before = snapshot(member, reward)
    with pytest.raises(PointsRefused) as refusal:
        redeem(member, reward)
    assert refusal.value.code == "reward_inactive"
    assert snapshot(member, reward) == before


@pytest.mark.django_db
def test_reward_available_today_only_can_be_redeemed_today():
    today = timezone.localdate()
    reward = RewardFactory(available_from=today, available_until=today)
    member = MemberFactory()
    points_give(member, 100, key="start")
    assert redeem(member, reward).status == Voucher.Status.ISSUED


# ------------------------------------------------------------------ voucher life


@pytest.mark.django_db
def test_cancelling_a_voucher_returns_its_points_by_a_reversal_and_its_stock():
    support = UserFactory(username="support")
    reward = RewardFactory(points_cost=100, stock=3)
    member = MemberFactory()
    points_give(member, 250, key="start")
    voucher = redeem(member, reward)
    assert balance(member) == 150

    cancelled = services.voucher_cancel(voucher_id=voucher.pk, reason="Customer changed mind",
                                        actor=support)

    assert cancelled.status == Voucher.Status.CANCELLED
    assert cancelled.cancel_reason == "Customer changed mind"
    reversal = PointsEntry.objects.get(reverses=voucher.redemption_entry)
    assert (reversal.kind, reversal.amount, reversal.actor) == ("reversal", 100, support)
    assert balance(member) == 250 == ledger_sum(member)
    reward.refresh_from_db()
    assert reward.stock == 3
    # The redemption row itself is kept: the ledger is append-only.
    assert PointsEntry.objects.filter(member=member).count() == 3
    # Cancelling again is refused and returns nothing twice.
    with pytest.raises(PointsRefused) as again:
        services.voucher_cancel(voucher_id=voucher.pk, reason="again", actor=support)
    assert again.value.code == "voucher_not_issued"
    assert balance(member) == 250


@pytest.mark.django_db
def test_cancelled_voucher_cannot_be_used():
    reward = RewardFactory()
    member = MemberFactory()
    points_give(member, 100, key="start")
    voucher = redeem(member, reward)
    services.voucher_cancel(voucher_id=voucher.pk, reason="Duplicate", actor=None)
    with pytest.raises(PointsRefused) as refusal:
        services.voucher_use(voucher_id=voucher.pk, actor=None)
    assert refusal.value.code == "voucher_not_issued"
    voucher.refresh_from_db()
    assert (voucher.status, voucher.used_at) == (Voucher.Status.CANCELLED, None)


@pytest.mark.django_db
def test_cancelling_a_voucher_needs_a_reason_that_is_asked_for_clearly():
    reward = RewardFactory()
    member = MemberFactory()
    points_give(member, 100, key="start")
    voucher = redeem(member, reward)
    with pytest.raises(PointsRefused) as refusal:
        services.voucher_cancel(voucher_id=voucher.pk, reason=" ", actor=None)
    assert refusal.value.code == "reason_required"
    voucher.refresh_from_db()
    assert voucher.status == Voucher.Status.ISSUED and balance(member) == 0
    # Support is cancelling a voucher, not setting a tier.
    assert "tier" not in str(refusal.value).lower()


@pytest.mark.django_db
def test_using_a_voucher_twice_is_harmless():
    reward = RewardFactory()
    member = MemberFactory()
    points_give(member, 100, key="start")
    voucher = redeem(member, reward)
    used_at = timezone.now() - timedelta(minutes=5)
    first = services.voucher_use(voucher_id=voucher.pk, actor=None, at=used_at)
    second = services.voucher_use(voucher_id=voucher.pk, actor=None)
    assert first.status == second.status == Voucher.Status.USED
    voucher.refresh_from_db()
    assert voucher.used_at == used_at
    assert balance(member) == 0  # nothing debited again
    # A used voucher cannot be cancelled for its points back.
    with pytest.raises(PointsRefused):
        services.voucher_cancel(voucher_id=voucher.pk, reason="after use", actor=None)
    assert balance(member) == 0


@pytest.mark.django_db
def test_voucher_cannot_be_used_after_its_expiry_even_before_the_nightly_job():
    reward = RewardFactory(voucher_valid_days=30)
    member = MemberFactory()
    points_give(member, 100, key="start")
    voucher = redeem(member, reward)
    with pytest.raises(PointsRefused):
        services.voucher_use(voucher_id=voucher.pk, actor=None,
                             at=voucher.expires_at + timedelta(minutes=1))
    voucher.refresh_from_db()
    assert voucher.status == Voucher.Status.ISSUED and voucher.used_at is None


@pytest.mark.django_db
def test_vouchers_expire_marks_only_issued_vouchers_past_their_date():
    short = RewardFactory(voucher_valid_days=30)
    long = RewardFactory(voucher_valid_days=120)
    member = MemberFactory()
    points_give(member, 400, key="start")
    redeem(member, short, key="past")  # expires in 30 days
    redeem(member, long, key="future")  # expires in 120 days
    used = redeem(member, short, key="used")
    services.voucher_use(voucher_id=used.pk, actor=None)
    cancelled = redeem(member, short, key="cancelled")
    services.voucher_cancel(voucher_id=cancelled.pk, reason="x", actor=None)

    in_31_days = timezone.now() + timedelta(days=31)
    assert services.vouchers_expire(now=in_31_days) == 1
    assert services.vouchers_expire(now=in_31_days) == 0  # nightly rerun: nothing more
    statuses = dict(Voucher.objects.values_list("idempotency_key", "status"))
    assert statuses == {"past": "expired", "future": "issued", "used": "used",
                        "cancelled": "cancelled"}
    # Expiry returns no points: they were spent on the voucher.
    assert balance(member) == 400 - 4 * 100 + 100  # the cancelled one came back


@pytest.mark.django_db
def test_gift_fulfilment_moves_from_to_ship_to_delivered():
    reward = RewardFactory(kind=Reward.Kind.GIFT, value=Decimal("0"))
    member = MemberFactory()
    points_give(member, 100, key="start")
    voucher = redeem(member, reward)
    for step in (Voucher.Fulfilment.SHIPPED, Voucher.Fulfilment.DELIVERED):
        voucher = services.voucher_fulfilment_set(voucher_id=voucher.pk, fulfilment=step,
                                                  actor=None)
        assert voucher.fulfilment == step
