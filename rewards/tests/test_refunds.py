"""Returns reverse the points a receipt earned, in proportion, even into a debt."""

from decimal import Decimal

import pytest

from members.models import Member, PointsEntry, Purchase, PurchaseRefund
from members.selectors import ledger_mismatches, member_points_summary
from members.services import PointsRefused, member_status_change, purchase_refund
from members.tests.factories import MemberFactory
from rewards import services
from rewards.tests.factories import RewardFactory, balance, buy, ledger_sum, programme

pytestmark = pytest.mark.django_db


def refund(recording, amount, key):
    return purchase_refund(purchase_id=recording.purchase.pk, amount=Decimal(amount),
                           refund_key=key, reason="Returned goods")


def returned(recording) -> list[int]:
    return list(PointsEntry.objects.filter(purchase=recording.purchase,
                                           kind=PointsEntry.Kind.RETURN)
                .order_by("id").values_list("amount", flat=True))


def test_two_partial_refunds_add_up_to_the_full_reversal_exactly():
    # 999.00 × 0.05 = 49.95 → 49 points.
    # Refund 333.00: 49 × 333/999 = 16.33 → 16 back.
    # Refund 666.00: all 999 refunded → 49 in all, 49 − 16 = 33 back. 16 + 33 = 49.
    member = MemberFactory()
    recording = buy(member, "999.00")
    assert recording.accrual.amount == 49
    refund(recording, "333.00", "RF-1")
    assert returned(recording) == [-16]
    refund(recording, "666.00", "RF-2")
    assert returned(recording) == [-16, -33]
    assert balance(member) == 0 == ledger_sum(member)
    purchase = Purchase.objects.get(pk=recording.purchase.pk)
    assert purchase.refunded_total == purchase.total == Decimal("999.00")


def test_three_equal_refunds_leave_no_rounding_drift():
    # 49 points on 999.00; three refunds of 333.00, each a third:
    #   after 1: round(49 × 1/3 = 16.33) = 16 → 16 back
    #   after 2: round(49 × 2/3 = 32.67) = 33 → 17 back
    #   after 3: 49                            → 16 back      16 + 17 + 16 = 49
    member = MemberFactory()
    recording = buy(member, "999.00")
    for i in range(3):
        refund(recording, "333.00", f"RF-{i}")
    assert returned(recording) == [-16, -17, -16]
    assert balance(member) == 0


def test_refund_of_points_already_spent_leaves_a_debt_that_later_accruals_pay_off():
    programme(return_window_days=0)
    member = MemberFactory()
    recording = buy(member, "2000")  # 2,000 × 0.05 = 100 points
    reward = RewardFactory(points_cost=80)
    services.reward_redeem(member_id=member.pk, reward_id=reward.pk, actor=None,
                           idempotency_key="spend-80")
    assert balance(member) == 20  # 100 − 80

    refund(recording, "2000", "RF-FULL")
    # The 100 go back, 80 of which were spent: a debt of exactly those 80.
    assert returned(recording) == [-100]
    assert balance(member) == -80
    summary = member_points_summary(member=Member.objects.get(pk=member.pk))
    assert (summary.balance, summary.available) == (-80, -80)

    # Nothing can be spent while in debt.
    with pytest.raises(PointsRefused):
        services.reward_redeem(member_id=member.pk, reward_id=RewardFactory(points_cost=1).pk,
                               actor=None, idempotency_key="in-debt")
    # The next purchase pays the debt off: 3,000 × 0.05 = 150; −80 + 150 = 70.
    buy(member, "3000")
    assert balance(member) == 70 == ledger_sum(member)
    assert not list(ledger_mismatches())


def test_same_refund_key_twice_counts_once():
    member = MemberFactory()
    recording = buy(member, "1000")  # 50 points
    first = refund(recording, "400", "POS-RF-77")
    second = refund(recording, "400", "POS-RF-77")
    assert second.pk == first.pk
    assert PurchaseRefund.objects.count() == 1
    assert Purchase.objects.get(pk=recording.purchase.pk).refunded_total == Decimal("400")
    assert returned(recording) == [-20]  # 50 × 400/1,000
    assert balance(member) == 30


def test_refund_larger_than_what_is_left_is_refused_and_writes_nothing():
    member = MemberFactory()
    recording = buy(member, "1000")  # 50 points
    refund(recording, "600", "RF-1")  # 30 back, 400 left of the receipt
    assert balance(member) == 20
    entries = PointsEntry.objects.count()

    with pytest.raises(PointsRefused) as refusal:
        refund(recording, "400.01", "RF-2")
    assert refusal.value.code == "refund_too_large"
    assert "(400.00)" in str(refusal.value)
    assert PurchaseRefund.objects.count() == 1
    assert not PurchaseRefund.objects.filter(refund_key="RF-2").exists()
    assert Purchase.objects.get(pk=recording.purchase.pk).refunded_total == Decimal("600")
    assert PointsEntry.objects.count() == entries
    assert balance(member) == 20
    # What is left can still be refunded: the last 400 return the last 20.
    refund(recording, "400", "RF-3")
    assert balance(member) == 0


@pytest.mark.parametrize("amount", ["0", "-10"])
def test_refund_of_nothing_or_less_is_refused(amount):
    member = MemberFactory()
    recording = buy(member, "1000")
    with pytest.raises(PointsRefused) as refusal:
        refund(recording, amount, "RF-0")
    assert refusal.value.code == "refund_not_positive"
    assert not PurchaseRefund.objects.exists() and balance(member) == 50


def test_refund_within_the_return_window_reduces_pending_points():
    programme(return_window_days=14)
    member = MemberFactory()
    recording = buy(member, "1000")  # 50 pending
    refund(recording, "500", "RF-HALF")  # 25 back, also pending until the window ends
    summary = member_points_summary(member=Member.objects.get(pk=member.pk))
    assert (summary.balance, summary.pending, summary.available) == (25, 25, 0)


def test_refund_for_a_blocked_member_still_takes_the_points_back():
    # The member was blocked after buying; the goods come back. The return is a
    # correction, not earning or spending: it must be recorded and its 50 reversed.
    programme(return_window_days=0)
    member = MemberFactory()
    recording = buy(member, "1000")  # 50 points
    member_status_change(member_id=member.pk, status=Member.Status.BLOCKED,
                         reason="Fraud check", actor=None)
    refund(recording, "1000", "RF-BLOCKED")
    assert returned(recording) == [-50]
    assert balance(member) == 0
    assert Purchase.objects.get(pk=recording.purchase.pk).refunded_total == Decimal("1000")
