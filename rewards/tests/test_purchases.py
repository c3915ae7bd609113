"""Purchases through the programme: recorded once, points once, by the rules."""

from decimal import Decimal

import pytest

from members import services as member_services
from members.models import Member, PointsEntry, Purchase
from members.tests.concurrency import run_in_threads
from members.tests.factories import MemberFactory, StoreFactory, ledger_sum
from rewards import services

pytestmark = pytest.mark.django_db







def test_same_purchase_recorded_twice_posts_points_once():
    member = MemberFactory()
    store = StoreFactory()
    kwargs = dict(store_id=store.pk, receipt_number="000123", total=Decimal("1999.99"),
                  member_id=member.pk,
                  lines=[member_services.PurchaseLineData(sku="SKU-1", amount=Decimal("1999.99"))])
    first = services.purchase_record(**kwargs)
    second = services.purchase_record(**kwargs)
    member.refresh_from_db()
    assert first.created and not second.created
    assert second.purchase.pk == first.purchase.pk
    assert first.accrual.amount == 99  # 1999.99 × 0.05 = 99.9995, rounded down
    assert member.points_balance == 99 == ledger_sum(member)
    assert Purchase.objects.count() == 1
    assert member.last_purchase_at == first.purchase.purchased_at


@pytest.mark.django_db(transaction=True)
def test_same_purchase_recorded_concurrently_posts_points_once():
    member = MemberFactory()
    store = StoreFactory()

    def work(i: int):
        return services.purchase_record(
            store_id=store.pk, receipt_number="R-1", total=Decimal("1000"), member_id=member.pk,
        )

    results = run_in_threads(6, work)
    assert all(isinstance(result, services.PurchaseRecording) for result in results), results
    assert sum(result.created for result in results) == 1
    member.refresh_from_db()
    assert member.points_balance == 50
    assert Purchase.objects.count() == 1


def test_blocked_members_purchase_is_recorded_without_points(support_user):
    member = MemberFactory()
    member_services.member_status_change(member_id=member.pk, status=Member.Status.BLOCKED,
                                  reason="Fraud check", actor=support_user)
    recording = services.purchase_record(store_id=StoreFactory().pk, receipt_number="B-1",
                                         total=Decimal("500"), member_id=member.pk)
    member.refresh_from_db()
    assert recording.created and recording.accrual is None
    assert member.points_balance == 0


def test_non_member_purchase_earns_nothing():
    recording = services.purchase_record(store_id=StoreFactory().pk, receipt_number="N-1",
                                         total=Decimal("500"))
    assert recording.created and recording.accrual is None
    assert not PointsEntry.objects.exists()


