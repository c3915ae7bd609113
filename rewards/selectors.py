"""Read queries of the programme shared by the member page, lists, tasks and campaigns."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from members.models import (
    Member,
    PointsEntry,
    ProductCategory,
    ProgrammeSettings,
    Purchase,
    TierBasis,
    TierWindow,
)
from members.postgres import arrays_execute
from members.selectors import months_before, programme_settings_get
from rewards.models import EarningRule, MemberTier, Tier, TierChange, Voucher


def tiers_ordered() -> list[Tier]:
    """Return every tier, lowest rank first."""
    return list(Tier.objects.order_by("rank"))


def tier_for_value(*, value: Decimal, tiers: list[Tier]) -> Tier:
    """Return the highest tier (not invitation-only) whose threshold ``value`` reaches.

    The lowest such tier when none is reached. ``tiers`` must be ordered by rank.
    """
    eligible = [tier for tier in tiers if not tier.invitation_only] or tiers
    reached = [tier for tier in eligible if tier.threshold <= value]
    return reached[-1] if reached else eligible[0]


def tier_entry_get(*, member_id: int) -> MemberTier | None:
    """Return the member's tier row with its tier, or None before their first one."""
    return MemberTier.objects.select_related("tier").filter(member_id=member_id).first()


def qualification_window_start(
    *, at: datetime, settings_row: ProgrammeSettings | None = None
) -> datetime | None:
    """Return when the qualification window that ends at ``at`` starts (None: lifetime)."""
    settings_row = settings_row or programme_settings_get()
    if settings_row.tier_window == TierWindow.LIFETIME:
        return None
    local = timezone.localtime(at)
    if settings_row.tier_window == TierWindow.CALENDAR_YEAR:
        return local.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    return months_before(local, settings_row.tier_window_months)


def qualification_window_end(*, at: datetime, settings_row: ProgrammeSettings) -> date | None:
    """Return the last day of the current window when it has one (calendar year), else None."""
    if settings_row.tier_window == TierWindow.CALENDAR_YEAR:
        return date(timezone.localtime(at).year, 12, 31)
    return None


def member_qualifying_value(*, member_id: int, at: datetime | None = None) -> Decimal:
    """Return the spend (net of refunds) or points earned that count for the member's tier."""
    at = at or timezone.now()
    settings_row = programme_settings_get()
    start = qualification_window_start(at=at, settings_row=settings_row)
    if settings_row.tier_basis == TierBasis.POINTS:
        entries = PointsEntry.objects.filter(
            member_id=member_id,
            created_at__lte=at,
            kind__in=[PointsEntry.Kind.ACCRUAL, PointsEntry.Kind.RETURN],
        )
        if start is not None:
            entries = entries.filter(created_at__gte=start)
        return Decimal(entries.aggregate(total=Sum("amount"))["total"] or 0)
    purchases = Purchase.objects.filter(member_id=member_id, purchased_at__lte=at)
    if start is not None:
        purchases = purchases.filter(purchased_at__gte=start)
    total = purchases.aggregate(total=Sum(F("total") - F("refunded_total")))["total"]
    return Decimal(total or 0)


@dataclass(frozen=True)
class TierProgress:
    """Where a member stands: tier, value, the next tier and what keeps the current one."""

    tier: Tier | None
    source: str
    manual_until: date | None
    value: Decimal
    basis: str
    next_tier: Tier | None
    to_next: Decimal
    window_end: date | None
    downgrade_on: date | None
    to_keep: Decimal


def member_tier_progress(*, member_id: int) -> TierProgress:
    """Return the member page's tier panel: progress up, and the risk of going down."""
    settings_row = programme_settings_get()
    tiers = tiers_ordered()
    entry = tier_entry_get(member_id=member_id)
    now = timezone.now()
    value = member_qualifying_value(member_id=member_id, at=now)
    current = entry.tier if entry else None
    higher = [
        tier
        for tier in tiers
        if not tier.invitation_only and (current is None or tier.rank > current.rank)
    ]
    next_tier = higher[0] if higher else None
    downgrade_on = None
    to_keep = Decimal(0)
    if (
        current is not None
        and value < current.threshold
        and entry.source == MemberTier.Source.QUALIFIED
    ):
        to_keep = current.threshold - value
        since = entry.below_since or timezone.localdate(now)
        downgrade_on = since + timedelta(days=current.grace_days)
    return TierProgress(
        tier=current,
        source=entry.source if entry else "",
        manual_until=entry.manual_until if entry else None,
        value=value,
        basis=settings_row.tier_basis,
        next_tier=next_tier,
        to_next=max(Decimal(0), next_tier.threshold - value) if next_tier else Decimal(0),
        window_end=qualification_window_end(at=now, settings_row=settings_row),
        downgrade_on=downgrade_on,
        to_keep=to_keep,
    )


def member_tier_history(*, member_id: int) -> QuerySet[TierChange]:
    """Return a member's tier changes, newest first, with the tiers and who made them."""
    return (
        TierChange.objects.filter(member_id=member_id)
        .select_related("from_tier", "to_tier", "actor")
        .order_by("-id")
    )


def members_facing_downgrade() -> QuerySet[MemberTier]:
    """Return members the next evaluations will move down: below their tier's threshold.

    Each row carries its tier and member; ``below_since`` + the tier's grace days is when.
    """
    return (
        MemberTier.objects.filter(below_since__isnull=False, source=MemberTier.Source.QUALIFIED)
        .select_related("tier", "member")
        .order_by("below_since")
    )


def member_vouchers(*, member_id: int) -> QuerySet[Voucher]:
    """Return a member's vouchers, newest first, with their rewards."""
    return Voucher.objects.filter(member_id=member_id).select_related("reward").order_by("-id")


def category_names_get() -> dict[int, str]:
    """Return product category names by id (a small table, read once per call)."""
    return dict(ProductCategory.objects.values_list("id", "name"))


def _birthday_days(*, today: date, timing: str) -> list[tuple[int, int, int]]:
    """Return (month, day, year) for the birthdays whose window is open ``today``.

    The year is the one the birthday falls in inside the window, so a week that crosses
    New Year pays a 2 January birthday once, for the new year.
    """
    if timing == "month":
        days = [(today.month, day, today.year) for day in range(1, 32)]
    else:
        if timing == "week":
            monday = today - timedelta(days=today.weekday())
            dates = [monday + timedelta(days=offset) for offset in range(7)]
        else:
            dates = [today]
        days = [(moment.month, moment.day, moment.year) for moment in dates]
    # 29 February birthdays are celebrated on the 28th in other years.
    for month, day, year in list(days):
        if (month, day) == (2, 28) and not calendar.isleap(year):
            days.append((2, 29, year))
    return days


def members_with_birthday_window(*, today: date, timing: str) -> list[tuple[int, int]]:
    """Return (member id, birthday year) for active members whose birthday window is open
    and who have had no birthday bonus for that year yet."""
    by_year: dict[int, Q] = {}
    for month, day, year in _birthday_days(today=today, timing=timing):
        by_year[year] = by_year.get(year, Q()) | Q(birth_date__month=month, birth_date__day=day)
    found: list[tuple[int, int]] = []
    for year, condition in sorted(by_year.items()):
        already = PointsEntry.objects.filter(
            member_id=OuterRef("pk"),
            kind=PointsEntry.Kind.BIRTHDAY,
            reference=f"birthday:{year}",
        )
        found += [
            (member_id, year)
            for member_id in Member.objects.filter(condition, status=Member.Status.ACTIVE)
            .exclude(Exists(already))
            .order_by("id")
            .values_list("id", flat=True)
        ]
    return found


def earning_rule_periods_get() -> list[tuple[int, date | None, date | None]]:
    """Return (id, valid from, valid until) of every active earning rule.

    Days on which the same rules are valid share one :func:`rewards.engine.earning_rules_load`
    (a batch of receipts spread over many days loads the rules once per set in force).
    """
    return list(
        EarningRule.objects.filter(is_active=True)
        .order_by("id")
        .values_list("id", "valid_from", "valid_until")
    )


def purchases_by_receipt(
    receipts: list[tuple[int, str]],
) -> dict[tuple[int, str], tuple[int | None, Decimal]]:
    """Return (member id, total) of the receipts already recorded, by (store id, number).

    On PostgreSQL one join of the pairs against the unique index; elsewhere a filter on
    both columns, checked pair by pair.
    """
    wanted = set(receipts)
    if not wanted:
        return {}
    if connection.vendor == "postgresql":
        pairs = sorted(wanted)
        rows = arrays_execute(
            f"SELECT p.store_id, p.receipt_number, p.member_id, p.total "  # noqa: S608
            f"FROM unnest(%s::bigint[], %s::text[]) AS v(store_id, receipt_number) "
            f"JOIN {Purchase._meta.db_table} p ON p.store_id = v.store_id "
            "AND p.receipt_number = v.receipt_number",
            [[pair[0] for pair in pairs], [pair[1] for pair in pairs]],
        )
    else:
        rows = Purchase.objects.filter(
            store_id__in={store_id for store_id, _number in wanted},
            receipt_number__in={number for _store_id, number in wanted},
        ).values_list("store_id", "receipt_number", "member_id", "total")
    return {
        (store_id, number): (member_id, total)
        for store_id, number, member_id, total in rows
        if (store_id, number) in wanted
    }
