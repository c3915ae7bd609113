"""The roll-ups give the numbers computed directly from the purchases and the ledger.

A generated programme (members joining over four months, three stores, two tiers,
non-member receipts, accruals, redemptions, expiries, purchases around midnight) is
rolled up; every figure of the dashboards is then computed again in Python from the
source rows, for several periods and with each filter, and must be equal.
"""

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from loyalty_admin.dashboards import rollups
from loyalty_admin.dashboards import selectors as figures
from loyalty_admin.dashboards.periods import Period
from loyalty_admin.models import MemberDay, SalesDay
from loyalty_admin.tests.dashboard_data import buy, generated
from members.models import Member, PointsEntry, Purchase
from rewards.models import MemberTier

pytestmark = pytest.mark.django_db


def direct(period: Period, previous: Period, *, store=None, tier=None, churn_days=90):
    """Every figure of the period, computed from the source tables row by row."""
    tiers = dict(MemberTier.objects.values_list("member_id", "tier_id"))
    enrolled = {pk: timezone.localdate(at) for pk, at in
                Member.objects.values_list("pk", "enrolled_at")}
    purchases = [
        (timezone.localdate(at), member_id, store_id, total)
        for at, member_id, store_id, total in
        Purchase.objects.values_list("purchased_at", "member_id", "store_id", "total")
    ]
    first_day = {}
    for day, member_id, _store, _total in purchases:
        if member_id is not None:
            first_day[member_id] = min(day, first_day.get(member_id, day))
    ledger = [
        (timezone.localdate(at), member_id, kind, amount)
        for at, member_id, kind, amount in
        PointsEntry.objects.values_list("created_at", "member_id", "kind", "amount")
    ]

    def keep(member_id, store_id=None, *, by_store=True) -> bool:
        if tier and tiers.get(member_id) != tier:
            return False
        return not (store and by_store and store_id != store)

    def buyers(p: Period) -> dict:
        counts = defaultdict(int)
        for day, member_id, store_id, _total in purchases:
            if member_id and p.contains(day) and keep(member_id, store_id):
                counts[member_id] += 1
        return counts

    now, before = buyers(period), buyers(previous)
    active = set(now)
    if not store:
        active |= {m for day, m, kind, _a in ledger
                   if period.contains(day) and kind == "redemption" and keep(m)}
    member_sales = [(t) for d, m, s, t in purchases if m and period.contains(d) and keep(m, s)]
    other_sales = [t for d, m, s, t in purchases
                   if m is None and period.contains(d) and (not store or s == store)]
    base_day = period.last - timedelta(days=churn_days)
    base = {m for m, day in enrolled.items() if day <= base_day and (not tier or
                                                                      tiers.get(m) == tier)}
    window = Period(base_day + timedelta(days=1), period.last)
    in_window = {m for d, m, s, _t in purchases
                 if m in base and window.contains(d) and keep(m, s)}
    issuing = set(figures.ISSUING_KINDS)
    return {
        "member_purchases": len(member_sales), "member_revenue": sum(member_sales, Decimal(0)),
        "other_purchases": len(other_sales), "other_revenue": sum(other_sales, Decimal(0)),
        "buyers": len(now), "previous_buyers": len(before),
        "retained": len(set(now) & set(before)),
        "new_buyers": sum(1 for m in now if period.contains(first_day[m])),
        "repeat_buyers": sum(1 for n in now.values() if n >= 2),
        "active": len(active),
        "new": sum(1 for m, day in enrolled.items() if period.contains(day) and keep(m)),
        "total": sum(1 for m, day in enrolled.items() if day <= period.last and keep(m)),
        "churn_base": len(base), "churn_active": len(in_window),
        "issued": sum(a for d, m, k, a in ledger
                      if period.contains(d) and k in issuing and a > 0 and keep(m)),
        "redeemed": -sum(a for d, m, k, a in ledger
                         if period.contains(d) and k == "redemption" and keep(m)),
        "expired": -sum(a for d, m, k, a in ledger
                        if period.contains(d) and k == "expiry" and keep(m)),
        "balance": sum(a for d, m, k, a in ledger if d <= period.last and keep(m)),
    }


def from_rollups(scope: figures.Scope) -> dict:
    sales = figures.sales_summary(scope)
    people = figures.members_summary(scope)
    points = figures.points_summary(scope, point_value=Decimal(1))
    return {
        "member_purchases": sales.member_purchases.now, "member_revenue": sales.member_revenue.now,
        "other_purchases": sales.other_purchases.now, "other_revenue": sales.other_revenue.now,
        "buyers": people.buyers.now, "previous_buyers": people.previous_buyers.now,
        "retained": people.retained.now, "new_buyers": people.new_buyers.now,
        "repeat_buyers": people.repeat_buyers.now, "active": people.active.now,
        "new": people.new.now, "total": people.total.now,
        "churn_base": people.churn_base.now, "churn_active": people.churn_active.now,
        "issued": points.issued.now, "redeemed": points.redeemed.now,
        "expired": points.expired.now, "balance": points.balance.now,
    }


@pytest.fixture
def programme():
    today = timezone.localdate()
    data = generated(today=today)
    rollups.rollup_rebuild()
    return {**data, "today": today}


def test_rollups_equal_the_direct_computation(programme):
    today = programme["today"]
    periods = [
        Period(today - timedelta(days=29), today),
        Period(today - timedelta(days=6), today - timedelta(days=1)),
        Period(programme["first"], programme["first"] + timedelta(days=44)),
        Period(today - timedelta(days=89), today),
    ]
    store, tier = programme["stores"][1].pk, programme["tiers"][0].pk
    compared = 0
    for period in periods:
        for filters in ({}, {"store": store}, {"tier": tier}, {"store": store, "tier": tier}):
            for churn_days in (30, 90):
                scope = figures.Scope(
                    period=period, previous=period.previous(), store_id=filters.get("store"),
                    tier_id=filters.get("tier"), churn_days=churn_days,
                )
                expected = direct(period, period.previous(), churn_days=churn_days, **filters)
                got = from_rollups(scope)
                if filters.get("store"):
                    # Points belong to no store: the store filter leaves them alone.
                    for name in ("issued", "redeemed", "expired", "balance"):
                        expected[name] = got[name]
                    # Without a store, members are counted whatever store they bought at.
                    expected["new"], expected["total"] = got["new"], got["total"]
                    expected["churn_base"] = got["churn_base"]
                assert got == expected, (period, filters, churn_days)
                compared += 1
    assert compared == 32
    assert Purchase.objects.count() > 150  # the data set is not trivial


def test_rerunning_a_rollup_changes_nothing(programme):
    today = programme["today"]
    before = sorted(SalesDay.objects.values_list("day", "store_id", "tier_id", "is_member",
                                                 "purchases", "revenue"), key=str)
    members = MemberDay.objects.count()
    rollups.rollup_days(first=today - timedelta(days=40), last=today)
    rollups.rollup_days(first=today - timedelta(days=40), last=today)
    after = sorted(SalesDay.objects.values_list("day", "store_id", "tier_id", "is_member",
                                                "purchases", "revenue"), key=str)
    assert after == before
    assert MemberDay.objects.count() == members


def test_today_is_computed_live(programme):
    scope = figures.Scope.of(Period(programme["today"], programme["today"]))
    purchases = figures.sales_summary(scope).purchases.now
    buy(programme["stores"][0], None, programme["today"], "123.45", "LIVE-1",
        hour=max(0, timezone.localtime().hour - 1) if timezone.localtime().hour else 0)
    # Within the minute the dashboards keep today's rows...
    assert rollups.rollup_today_refresh() is False
    # ...after it, the next page rolls today up again.
    assert rollups.rollup_today_refresh(max_age_seconds=0) is True
    assert figures.sales_summary(scope).purchases.now == purchases + 1


def test_a_purchase_recorded_late_moves_the_first_purchase(programme):
    member = Member.objects.filter(purchases__isnull=False).order_by("id").first()
    first = Purchase.objects.filter(member=member).order_by("purchased_at").first()
    earlier = timezone.localdate(first.purchased_at) - timedelta(days=3)
    buy(programme["stores"][0], member, earlier, "10.00", "LATE-1")
    rollups.rollup_days(first=earlier, last=earlier)
    flags = list(MemberDay.objects.filter(member_id=member.pk, first_purchase=True)
                 .values_list("day", flat=True))
    assert flags == [earlier]


def test_rebuild_starts_at_the_first_day_of_history(programme):
    first = rollups.history_first_day()
    assert first == min(
        timezone.localdate(Member.objects.order_by("enrolled_at").first().enrolled_at),
        timezone.localdate(Purchase.objects.order_by("purchased_at").first().purchased_at),
    )
    assert isinstance(first, date)


def _count_parts() -> list[tuple]:
    from loyalty_admin.models import MemberCountPart

    # Keys whose every measure went back to 0 stay as rows of zeros: they count nothing.
    columns = ["store_id", "tier_id", "low", "high", *MemberCountPart.MEASURES]
    return sorted(row for row in MemberCountPart.objects.values_list(*columns)
                  if any(row[4:]))


def test_count_parts_adjusted_in_place_equal_parts_built_from_scratch(programme):
    """A run adjusts the member count parts of its days; they must equal a fresh build."""
    from django.db import transaction

    from loyalty_admin.models import MemberCountPart

    today, stores, tiers = programme["today"], programme["stores"], programme["tiers"]
    members = list(Member.objects.filter(purchases__isnull=False).distinct().order_by("id")[:3])
    middle = today - timedelta(days=50)
    # A late purchase before a member's first, one in the middle of a history, one for
    # a member who had none in the range, a purchase deleted, and a tier changed.
    first = Purchase.objects.filter(member=members[0]).order_by("purchased_at").first()
    buy(stores[0], members[0], timezone.localdate(first.purchased_at) - timedelta(days=2),
        "10.00", "LATE-A")
    buy(stores[1], members[1], middle, "20.00", "LATE-B")
    buy(stores[2], members[2], middle + timedelta(days=1), "30.00", "LATE-C")
    buy(stores[2], members[2], middle + timedelta(days=1), "31.00", "LATE-D")
    Purchase.objects.filter(member=members[1], purchased_at__date__lt=middle).order_by(
        "-purchased_at").first().delete()
    MemberTier.objects.filter(member=members[2]).update(tier=tiers[1])
    rollups.rollup_days(first=timezone.localdate(first.purchased_at) - timedelta(days=2),
                        last=timezone.localdate(first.purchased_at))
    rollups.rollup_days(first=middle - timedelta(days=20), last=middle + timedelta(days=3))
    rollups.rollup_days(first=today, last=today)
    adjusted = _count_parts()
    with transaction.atomic():
        MemberCountPart.objects.all().delete()
        rollups._count_parts_rebuild()
    assert adjusted == _count_parts()
    assert len(adjusted) > 100


def test_a_run_replaces_the_parts_of_the_members_whose_days_changed_only(programme, monkeypatch):
    """Members whose member-days in the range are as before keep their parts untouched.

    The parts of the others (a purchase added, a day's only purchase deleted, a tier
    changed without a purchase) are replaced, and every part equals a fresh build.
    """
    from django.db import connection, transaction

    from loyalty_admin.models import MemberCountPart

    today, stores, tiers = programme["today"], programme["stores"], programme["tiers"]
    day = today - timedelta(days=3)
    read = []

    def affected():
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT member_id FROM {rollups._AFFECTED}")  # noqa: S608
            read.append(sorted(row[0] for row in cursor.fetchall()))

    monkeypatch.setattr(rollups, "_analyze_affected", affected)
    # The same day again: nobody's days changed, no member's history is read.
    rollups.rollup_days(first=day, last=day)
    assert read == []
    buyers = list(MemberDay.objects.filter(day=day, purchases__gt=0).order_by("member_id")
                  .values_list("member_id", flat=True).distinct())
    assert len(buyers) >= 3
    added, emptied, moved = buyers[0], buyers[1], buyers[2]
    buy(stores[0], Member.objects.get(pk=added), day, "12.00", "AGAIN-A")
    Purchase.objects.filter(member_id=emptied, purchased_at__date=day).delete()
    MemberTier.objects.filter(member_id=moved).update(
        tier=tiers[1] if MemberTier.objects.get(member_id=moved).tier_id == tiers[0].pk
        else tiers[0])
    newcomer = Member.objects.exclude(pk__in=MemberDay.objects.values("member_id")).first()
    if newcomer is not None:
        buy(stores[1], newcomer, day, "5.00", "AGAIN-N")
    rollups.rollup_days(first=day, last=day)
    expected = sorted([added, emptied, moved] + ([newcomer.pk] if newcomer else []))
    assert read == [expected]
    adjusted = _count_parts()
    with transaction.atomic():
        MemberCountPart.objects.all().delete()
        rollups._count_parts_rebuild()
    assert adjusted == _count_parts()
