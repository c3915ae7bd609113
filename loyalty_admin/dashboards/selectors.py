"""The dashboards' figures, read from the daily roll-ups: one query per widget.

Each function takes a :class:`Scope` (the period, the period it is compared with, the
store and tier filters) and returns plain numbers; the formulas are on the "How we
compute this" page (``templates/admin/dashboards/methods.html``) and in
``docs/readme/dashboards.md``. Every count of distinct members reads
:class:`~loyalty_admin.models.MemberCountPart` (pre-aggregated from the member-days, so
a page reads thousands of rows, not millions); every sum reads the smaller per-day
tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.apps import apps
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce, TruncMonth, TruncWeek

from loyalty_admin.dashboards.periods import Period, month_first, months_add
from loyalty_admin.models import (
    CohortMonth,
    EnrolmentDay,
    MarketingSpend,
    MemberCountPart,
    PointsDay,
    SalesDay,
    ValueEstimate,
)
from members.models import PointsEntry

DEFAULT_CHURN_DAYS = 90
CHURN_CHOICES = (30, 60, 90, 180, 365)
# Kinds whose positive amounts are points issued; reversals and returns undo earlier ones.
ISSUING_KINDS = (
    PointsEntry.Kind.ACCRUAL, PointsEntry.Kind.REFERRAL, PointsEntry.Kind.WELCOME,
    PointsEntry.Kind.BIRTHDAY, PointsEntry.Kind.CAMPAIGN, PointsEntry.Kind.GOODWILL,
    PointsEntry.Kind.ADJUSTMENT, PointsEntry.Kind.OPENING,
)
LIFETIME_CAP_YEARS = 10
ZERO = Decimal("0")


@dataclass(frozen=True)
class Scope:
    """What a dashboard shows: ``period`` against ``previous``, for a store and a tier."""

    period: Period
    previous: Period
    store_id: int | None = None
    tier_id: int | None = None
    churn_days: int = DEFAULT_CHURN_DAYS

    @classmethod
    def of(cls, period: Period, **filters) -> Scope:
        return cls(period=period, previous=period.previous(), **filters)


def ratio(part, whole, *, percent: bool = False) -> Decimal | None:
    """Return ``part / whole`` (× 100 with ``percent``) to 4 places; None when undefined."""
    if part is None or not whole:
        return None
    value = Decimal(part) / Decimal(whole) * (100 if percent else 1)
    return value.quantize(Decimal("0.0001"))


@dataclass
class Pair:
    """A figure now and in the period it is compared with."""

    now: object
    before: object

    @property
    def change(self) -> Decimal | None:
        """Relative change in percent; None when there is nothing to compare with."""
        if self.now is None or self.before in (None, 0):
            return None
        return ratio(Decimal(self.now) - Decimal(self.before), abs(Decimal(self.before)),
                     percent=True)


# ------------------------------------------------------------------ sales


def _in(period: Period) -> Q:
    return Q(day__gte=period.first, day__lte=period.last)


def _sales_rows(scope: Scope):
    rows = SalesDay.objects.all()
    if scope.store_id:
        rows = rows.filter(store_id=scope.store_id)
    if scope.tier_id:
        # Non-members have no tier: the comparison keeps all of them.
        rows = rows.filter(Q(is_member=False) | Q(tier_id=scope.tier_id))
    return rows


@dataclass
class SalesSummary:
    member_purchases: Pair
    member_revenue: Pair
    other_purchases: Pair
    other_revenue: Pair
    refunded: Pair

    @property
    def purchases(self) -> Pair:
        return Pair(self.member_purchases.now + self.other_purchases.now,
                    self.member_purchases.before + self.other_purchases.before)

    @property
    def revenue(self) -> Pair:
        return Pair(self.member_revenue.now + self.other_revenue.now,
                    self.member_revenue.before + self.other_revenue.before)

    @property
    def member_aov(self) -> Pair:
        return Pair(ratio(self.member_revenue.now, self.member_purchases.now),
                    ratio(self.member_revenue.before, self.member_purchases.before))

    @property
    def other_aov(self) -> Pair:
        return Pair(ratio(self.other_revenue.now, self.other_purchases.now),
                    ratio(self.other_revenue.before, self.other_purchases.before))

    @property
    def member_revenue_share(self) -> Pair:
        return Pair(ratio(self.member_revenue.now, self.revenue.now, percent=True),
                    ratio(self.member_revenue.before, self.revenue.before, percent=True))

    @property
    def participation(self) -> Pair:
        return Pair(ratio(self.member_purchases.now, self.purchases.now, percent=True),
                    ratio(self.member_purchases.before, self.purchases.before, percent=True))


def sales_summary(scope: Scope) -> SalesSummary:
    """Return purchases and revenue of members and non-members, now and before (1 query)."""
    figures = {}
    for name, period in (("now", scope.period), ("before", scope.previous)):
        inside = _in(period)
        figures.update({
            f"mp_{name}": Coalesce(Sum("purchases", filter=inside & Q(is_member=True)), 0),
            f"mr_{name}": Coalesce(Sum("revenue", filter=inside & Q(is_member=True)), ZERO),
            f"op_{name}": Coalesce(Sum("purchases", filter=inside & Q(is_member=False)), 0),
            f"or_{name}": Coalesce(Sum("revenue", filter=inside & Q(is_member=False)), ZERO),
            f"rf_{name}": Coalesce(Sum("refunded", filter=inside), ZERO),
        })
    span = Q(day__gte=min(scope.previous.first, scope.period.first),
             day__lte=max(scope.previous.last, scope.period.last))
    values = _sales_rows(scope).filter(span).aggregate(**figures)
    return SalesSummary(*(
        Pair(values[f"{key}_now"], values[f"{key}_before"])
        for key in ("mp", "mr", "op", "or", "rf")
    ))


def aov_by_tier(scope: Scope) -> list[dict]:
    """Return purchases, revenue and average order value per tier in the period, members
    without a tier and non-members included (``tier_id`` None, ``is_member`` apart)."""
    rows = (
        _sales_rows(scope).filter(_in(scope.period))
        .values("is_member", "tier_id")
        .annotate(purchases=Sum("purchases"), revenue=Sum("revenue"))
        .order_by("-is_member", "tier_id")
    )
    return [{**row, "aov": ratio(row["revenue"], row["purchases"])} for row in rows]


def grain_for(period: Period) -> str:
    """Return the bucket of a trend chart: days up to two months, then weeks, then months."""
    if period.days <= 62:
        return "day"
    if period.days <= 190:
        return "week"
    return "month"


def buckets(period: Period) -> list[date]:
    """Return the first day of every bucket of the period's trend, in order."""
    grain = grain_for(period)
    if grain == "day":
        return [period.first + timedelta(days=k) for k in range(period.days)]
    if grain == "week":
        first = period.first - timedelta(days=period.first.weekday())
        return [first + timedelta(weeks=k) for k in range((period.last - first).days // 7 + 1)]
    months, month = [], month_first(period.first)
    while month <= period.last:
        months.append(month)
        month = months_add(month, 1)
    return months


def _filled(rows: list[dict], period: Period, zero: dict) -> list[dict]:
    """Return one row per bucket: days, weeks or months without activity hold zeros."""
    found = {row["bucket"]: row for row in rows}
    return [found.get(bucket, {"bucket": bucket, **zero}) for bucket in buckets(period)]


def _bucketed(queryset, period: Period):
    grain = grain_for(period)
    if grain == "day":
        return queryset.annotate(bucket=F("day")), grain
    trunc = TruncWeek if grain == "week" else TruncMonth
    return queryset.annotate(bucket=trunc("day")), grain


def sales_trend(scope: Scope) -> tuple[str, list[dict]]:
    """Return the grain and, per bucket, member and non-member purchases and revenue."""
    rows, grain = _bucketed(_sales_rows(scope).filter(_in(scope.period)), scope.period)
    rows = (
        rows.values("bucket")
        .annotate(
            member_purchases=Coalesce(Sum("purchases", filter=Q(is_member=True)), 0),
            member_revenue=Coalesce(Sum("revenue", filter=Q(is_member=True)), ZERO),
            other_purchases=Coalesce(Sum("purchases", filter=Q(is_member=False)), 0),
            other_revenue=Coalesce(Sum("revenue", filter=Q(is_member=False)), ZERO),
        )
        .order_by("bucket")
    )
    zero = {"member_purchases": 0, "member_revenue": ZERO, "other_purchases": 0,
            "other_revenue": ZERO}
    return grain, _filled(list(rows), scope.period, zero)


# ------------------------------------------------------------------ members


@dataclass
class MembersSummary:
    total: Pair
    new: Pair
    active: Pair
    buyers: Pair
    previous_buyers: Pair
    retained: Pair
    new_buyers: Pair
    repeat_buyers: Pair
    member_purchases: Pair
    churn_base: Pair = field(default_factory=lambda: Pair(0, 0))
    churn_active: Pair = field(default_factory=lambda: Pair(0, 0))

    @property
    def crr(self) -> Pair:
        """Customer retention rate ((E − N) / S) × 100."""
        return Pair(*(
            ratio(getattr(self.buyers, w) - getattr(self.new_buyers, w),
                  getattr(self.previous_buyers, w), percent=True)
            for w in ("now", "before")
        ))

    @property
    def strict_retention(self) -> Pair:
        """|S ∩ E| / |S| × 100."""
        return Pair(*(
            ratio(getattr(self.retained, w), getattr(self.previous_buyers, w), percent=True)
            for w in ("now", "before")
        ))

    @property
    def repeat_rate(self) -> Pair:
        return Pair(*(
            ratio(getattr(self.repeat_buyers, w), getattr(self.buyers, w), percent=True)
            for w in ("now", "before")
        ))

    @property
    def frequency(self) -> Pair:
        """Purchases per active member (member purchases / members active)."""
        return Pair(*(
            ratio(getattr(self.member_purchases, w), getattr(self.active, w))
            for w in ("now", "before")
        ))

    @property
    def churn(self) -> Pair:
        return Pair(*(
            ratio(getattr(self.churn_base, w) - getattr(self.churn_active, w),
                  getattr(self.churn_base, w), percent=True)
            for w in ("now", "before")
        ))


def _enrolment_rows(scope: Scope):
    rows = EnrolmentDay.objects.all()
    if scope.tier_id:
        rows = rows.filter(tier_id=scope.tier_id)
    return rows


# How a count of distinct members comes from MemberCountPart. In one filter's sequence
# of a member's days (see the model), the member bought in [a, b] when exactly one of
# their days with a purchase in [a, b] has its previous one before a: so the buyers are
# the days with a purchase in [a, b] (buy_days) less those whose previous day with a
# purchase is in [a, b] too (buy_gaps of pairs with low >= a and high <= b). Active
# members likewise from active days. The new buyers are the first days of sequences
# whose first purchase ever is in [a, b] (first). A member with exactly one purchase in
# [a, b] has a day with one purchase there and none before or after it inside:
# one_days - one_previous - one_next + one_span (inclusion-exclusion); the repeat
# buyers are the other buyers. Members enrolled by day c - 1 who bought in [c, b]: days
# with a purchase in [c, b] less those whose previous purchase or enrolment is on or
# after c (churn_gaps). Each term reads one row per pair of days of the periods,
# whatever the number of members.


def _count_terms(scope: Scope, terms: list[tuple[str, date, date]]) -> list[int]:
    """Return a column of the parts summed for each (column, a, b) term (1 query).

    A term sums the column over the parts with ``low >= a`` and ``high <= b``, for the
    scope's store and tier (0: every one). The parts are grouped by which periods they
    fall in (a handful of groups), so each row is tested once per period, not per term.
    """
    table = connection.ops.quote_name(MemberCountPart._meta.db_table)
    known = set(MemberCountPart.MEASURES)
    periods = sorted({(a, b) for _c, a, b in terms})
    columns = sorted({column for column, _a, _b in terms})
    if not known.issuperset(columns):
        raise ValueError(columns)
    # One number per row, bit k set when the row is inside period k: a single grouping
    # key the planner hashes (separate flags make it guess as many groups as rows).
    inside = " + ".join(f"CASE WHEN p.low >= %s AND p.high <= %s THEN {1 << k} ELSE 0 END"
                        for k in range(len(periods)))
    sums = ", ".join(f"SUM(p.{column})" for column in columns)
    # PostgreSQL estimates the groups of the key from the statistics of low and high
    # (hundreds of thousands, so it sorts, in temporary files); behind OFFSET 0 the key
    # is a column it knows nothing of and it hashes the handful of groups in memory.
    fence = " OFFSET 0" if connection.vendor == "postgresql" else ""
    # Only the columns summed: the rows pass through the fence (and parallel workers).
    read = ", ".join(f"p.{column}" for column in columns)
    with connection.cursor() as cursor:
        # Table and column names are the model's; every value is a parameter.
        cursor.execute(
            f"SELECT p.inside, {sums} FROM (SELECT {inside} AS inside, {read} FROM {table} p "  # noqa: S608
            f"WHERE p.store_id = %s AND p.tier_id = %s AND p.low >= %s AND p.high <= %s{fence}) p "
            "GROUP BY p.inside",
            [*(day for period in periods for day in period), scope.store_id or 0,
             scope.tier_id or 0, periods[0][0], max(b for _a, b in periods)],
        )
        groups = cursor.fetchall()
    totals = dict.fromkeys(((c, p) for c in columns for p in periods), 0)
    for bits, *values in groups:
        within = [period for k, period in enumerate(periods) if bits & (1 << k)]
        for column, value in zip(columns, values, strict=True):
            for period in within:
                totals[column, period] += int(value or 0)
    return [totals[column, (a, b)] for column, a, b in terms]


def _buyers(first: date, last: date) -> list[tuple[str, date, date]]:
    return [("buy_days", first, last), ("buy_gaps", first, last)]


def members_summary(scope: Scope) -> MembersSummary:
    """Return the member counts of the period and the period before (3 queries).

    Retention of the period before needs the period before that. Every count of
    distinct members is a signed sum of pre-aggregated parts (see the note above and
    :class:`~loyalty_admin.models.MemberCountPart`), in one query; the members who
    bought in two neighbouring periods are those of each less those of both together.
    The period compared with must end the day before the period starts (it always does:
    :meth:`Period.previous`).
    """
    now, before = scope.period, scope.previous
    earlier = before.previous()
    if before.last + timedelta(days=1) != now.first:
        raise ValueError("The period compared with must end the day before the period.")
    buyers_of = (earlier, before, now, Period(earlier.first, before.last),
                 Period(before.first, now.last))
    terms = [term for p in buyers_of for term in _buyers(p.first, p.last)]
    for p in (before, now):
        terms += [(column, p.first, p.last) for column in (
            "active_days", "active_gaps", "first", "one_days", "one_previous", "one_next",
            "one_span", "purchases",
        )]
    values = iter(_count_terms(scope, terms))
    b0, b1, b2, b01, b12 = (next(values) - next(values) for _p in buyers_of)
    kept1, kept2 = b0 + b1 - b01, b1 + b2 - b12
    figures = {}
    for name, bought in (("1", b1), ("2", b2)):
        days, gaps, first, one, one_prev, one_next, one_span, purchases = (
            next(values) for _k in range(8)
        )
        # At one store only purchases count: points are spent at no store.
        figures[f"a{name}"] = bought if scope.store_id else days - gaps
        figures[f"new{name}"] = first
        figures[f"rep{name}"] = bought - (one - one_prev - one_next + one_span)
        figures[f"n{name}"] = purchases
    base_now = now.last - timedelta(days=scope.churn_days)
    base_before = before.last - timedelta(days=scope.churn_days)
    enrolled = _enrolment_rows(scope).filter(day__lte=now.last).aggregate(
        total_now=Coalesce(Sum("members"), 0),
        total_before=Coalesce(Sum("members", filter=Q(day__lte=before.last)), 0),
        new_now=Coalesce(Sum("members", filter=_in(now)), 0),
        new_before=Coalesce(Sum("members", filter=_in(before)), 0),
        base_now=Coalesce(Sum("members", filter=Q(day__lte=base_now)), 0),
        base_before=Coalesce(Sum("members", filter=Q(day__lte=base_before)), 0),
    )
    churn_now, churn_before = _churn_active(scope, base_now, base_before)
    return MembersSummary(
        total=Pair(enrolled["total_now"], enrolled["total_before"]),
        new=Pair(enrolled["new_now"], enrolled["new_before"]),
        active=Pair(figures["a2"], figures["a1"]), buyers=Pair(b2, b1),
        previous_buyers=Pair(b1, b0), retained=Pair(kept2, kept1),
        new_buyers=Pair(figures["new2"], figures["new1"]),
        repeat_buyers=Pair(figures["rep2"], figures["rep1"]),
        member_purchases=Pair(figures["n2"], figures["n1"]),
        churn_base=Pair(enrolled["base_now"], enrolled["base_before"]),
        churn_active=Pair(churn_now, churn_before),
    )


def _churn_active(scope: Scope, base_now: date, base_before: date) -> tuple[int, int]:
    """Return how many members enrolled by each base day bought in the window after it.

    One query: the days with a purchase in the window less those whose previous
    purchase or enrolment is inside it (the note above :func:`members_summary`).
    """
    terms = []
    for base, last in ((base_now, scope.period.last), (base_before, scope.previous.last)):
        start = base + timedelta(days=1)
        terms += [("buy_days", start, last), ("churn_gaps", start, last)]
    days_now, gaps_now, days_before, gaps_before = _count_terms(scope, terms)
    return days_now - gaps_now, days_before - gaps_before


def members_trend(scope: Scope) -> tuple[str, list[dict]]:
    """Return per bucket of the period: members enrolled (1 query)."""
    rows, grain = _bucketed(_enrolment_rows(scope).filter(_in(scope.period)), scope.period)
    rows = rows.values("bucket").annotate(new=Sum("members")).order_by("bucket")
    return grain, _filled(list(rows), scope.period, {"new": 0})


def tier_distribution() -> list[dict]:
    """Return members per tier now, and those without a tier (``tier_id`` None; 2 queries).

    Read live: a member's current tier is one row each, counted on its index.
    """
    member_tier = apps.get_model("rewards", "MemberTier")
    rows = list(member_tier.objects.values("tier_id").annotate(members=Count("pk"))
                .order_by("tier_id"))
    everyone = EnrolmentDay.objects.aggregate(n=Coalesce(Sum("members"), 0))["n"]
    without = everyone - sum(row["members"] for row in rows)
    if without > 0:
        rows.append({"tier_id": None, "members": without})
    return rows


# ------------------------------------------------------------------ cohorts


def cohort_triangle(scope: Scope, *, cohorts: int = 12) -> tuple[list[date], list[dict]]:
    """Return the enrolment months and, per cohort, its size and buyers per month since.

    The last ``cohorts`` enrolment months up to the period's last month; each row is
    ``{"cohort": month, "size": n, "active": [n0, n1, ...]}`` with ``active[k]`` the
    members of the cohort who bought in its k-th month (0: the month they enrolled).
    Two queries.
    """
    last_month = month_first(scope.period.last)
    first_month = months_add(last_month, -(cohorts - 1))
    months = [months_add(first_month, k) for k in range(cohorts)]
    sizes = {
        row["month"]: row["n"]
        for row in _enrolment_rows(scope).filter(day__gte=first_month, day__lte=scope.period.last)
        .annotate(month=TruncMonth("day")).values("month").annotate(n=Sum("members"))
    }
    cells = CohortMonth.objects.filter(
        cohort__gte=first_month, cohort__lte=last_month, month__lte=last_month
    )
    cells = cells.filter(tier_id=scope.tier_id, all_tiers=False) if scope.tier_id else cells.filter(
        all_tiers=True
    )
    active = {(c, m): n for c, m, n in cells.values_list("cohort", "month", "members")}
    rows = []
    for cohort in months:
        span = (last_month.year - cohort.year) * 12 + last_month.month - cohort.month
        rows.append({
            "cohort": cohort,
            "size": sizes.get(cohort, 0),
            "active": [active.get((cohort, months_add(cohort, k)), 0) for k in range(span + 1)],
        })
    return months, rows


# ------------------------------------------------------------------ points


@dataclass
class PointsSummary:
    issued: Pair
    redeemed: Pair
    expired: Pair
    balance: Pair
    by_kind: list[dict]
    point_value: Decimal

    @property
    def redemption_rate(self) -> Pair:
        return Pair(ratio(self.redeemed.now, self.issued.now, percent=True),
                    ratio(self.redeemed.before, self.issued.before, percent=True))

    @property
    def breakage(self) -> Pair:
        return Pair(ratio(self.expired.now, self.issued.now, percent=True),
                    ratio(self.expired.before, self.issued.before, percent=True))

    @property
    def liability(self) -> Pair:
        return Pair(*(
            (Decimal(getattr(self.balance, w)) * self.point_value).quantize(Decimal("0.01"))
            for w in ("now", "before")
        ))


def _points_rows(scope: Scope):
    rows = PointsDay.objects.all()
    if scope.tier_id:
        rows = rows.filter(tier_id=scope.tier_id)
    return rows


def points_summary(scope: Scope, *, point_value: Decimal) -> PointsSummary:
    """Return points issued, redeemed, expired per period and the balance at each end.

    One query grouped by kind. Points do not depend on the store filter.
    """
    now, before = scope.period, scope.previous
    rows = list(
        _points_rows(scope).filter(day__lte=now.last).values("kind").annotate(
            in_now=Coalesce(Sum("points_in", filter=_in(now)), 0),
            out_now=Coalesce(Sum("points_out", filter=_in(now)), 0),
            in_before=Coalesce(Sum("points_in", filter=_in(before)), 0),
            out_before=Coalesce(Sum("points_out", filter=_in(before)), 0),
            net_now=Coalesce(Sum("points_in"), 0) - Coalesce(Sum("points_out"), 0),
            net_before=Coalesce(Sum("points_in", filter=Q(day__lte=before.last)), 0)
            - Coalesce(Sum("points_out", filter=Q(day__lte=before.last)), 0),
            entries=Coalesce(Sum("entries", filter=_in(now)), 0),
        ).order_by("kind")
    )

    def total(when: str, column: str, kinds) -> int:
        return sum(row[f"{column}_{when}"] for row in rows if row["kind"] in kinds)

    return PointsSummary(
        issued=Pair(total("now", "in", ISSUING_KINDS), total("before", "in", ISSUING_KINDS)),
        redeemed=Pair(total("now", "out", (PointsEntry.Kind.REDEMPTION,)),
                      total("before", "out", (PointsEntry.Kind.REDEMPTION,))),
        expired=Pair(total("now", "out", (PointsEntry.Kind.EXPIRY,)),
                     total("before", "out", (PointsEntry.Kind.EXPIRY,))),
        balance=Pair(sum(row["net_now"] for row in rows),
                     sum(row["net_before"] for row in rows)),
        by_kind=[row for row in rows if row["in_now"] or row["out_now"]],
        point_value=point_value,
    )


def points_trend(scope: Scope) -> tuple[str, list[dict]]:
    """Return per bucket: points issued, redeemed and expired (1 query)."""
    rows, grain = _bucketed(_points_rows(scope).filter(_in(scope.period)), scope.period)
    rows = rows.values("bucket").annotate(
        issued=Coalesce(Sum("points_in", filter=Q(kind__in=ISSUING_KINDS)), 0),
        redeemed=Coalesce(Sum("points_out", filter=Q(kind=PointsEntry.Kind.REDEMPTION)), 0),
        expired=Coalesce(Sum("points_out", filter=Q(kind=PointsEntry.Kind.EXPIRY)), 0),
    ).order_by("bucket")
    return grain, _filled(list(rows), scope.period, {"issued": 0, "redeemed": 0, "expired": 0})


# ------------------------------------------------------------------ acquisition


def acquisition_months(*, first: date, last: date, tier_id: int | None = None) -> list[dict]:
    """Return per month from ``first``'s to ``last``'s: spend, new members and CAC (2 queries).

    The CAC of a month is its spend divided by the members who enrolled in it; None when
    nobody enrolled or no spend was recorded.
    """
    first_month, last_month = month_first(first), month_first(last)
    spend = dict(
        MarketingSpend.objects.filter(month__gte=first_month, month__lte=last_month)
        .values("month").annotate(total=Sum("amount")).values_list("month", "total")
    )
    enrolled = EnrolmentDay.objects.filter(day__gte=first_month, day__lte=last)
    if tier_id:
        enrolled = enrolled.filter(tier_id=tier_id)
    new = dict(
        enrolled.annotate(month=TruncMonth("day")).values("month")
        .annotate(n=Sum("members")).values_list("month", "n")
    )
    rows, month = [], first_month
    while month <= last_month:
        amount = spend.get(month)
        rows.append({
            "month": month, "spend": amount, "new": new.get(month, 0),
            "cac": ratio(amount, new.get(month, 0)) if amount is not None else None,
        })
        month = months_add(month, 1)
    return rows


def cac_window(rows: list[dict]) -> dict:
    """Return spend, new members and CAC summed over months that have a recorded spend."""
    spent = [row for row in rows if row["spend"] is not None]
    spend = sum((row["spend"] for row in spent), ZERO)
    new = sum(row["new"] for row in spent)
    return {"spend": spend, "new": new, "cac": ratio(spend, new), "months": len(spent)}


# ------------------------------------------------------------------ value


@dataclass
class ValueRow:
    group: str
    key: str
    active_members: int
    retained_members: int
    previous_members: int
    revenue: Decimal

    @property
    def annual_revenue(self) -> Decimal | None:
        return ratio(self.revenue, self.active_members)

    @property
    def retention(self) -> Decimal | None:
        return ratio(self.retained_members, self.previous_members)

    @property
    def lifetime_years(self) -> Decimal | None:
        r = self.retention
        if r is None:
            return None
        if r >= 1 - Decimal(1) / LIFETIME_CAP_YEARS:
            return Decimal(LIFETIME_CAP_YEARS)
        return (1 / (1 - r)).quantize(Decimal("0.01"))

    @property
    def clv(self) -> Decimal | None:
        if self.annual_revenue is None or self.lifetime_years is None:
            return None
        return (self.annual_revenue * self.lifetime_years).quantize(Decimal("0.01"))


def value_estimates() -> tuple[date | None, list[ValueRow]]:
    """Return the day of the latest lifetime value estimate and its rows (1 query)."""
    rows = list(
        ValueEstimate.objects.filter(
            computed_on=ValueEstimate.objects.order_by("-computed_on").values("computed_on")[:1]
        ).order_by("group", "key")
    )
    if not rows:
        return None, []
    return rows[0].computed_on, [
        ValueRow(row.group, row.key, row.active_members, row.retained_members,
                 row.previous_members, row.revenue)
        for row in rows
    ]


# How long the RFM grid of one scoring run is kept: the scores change only when the
# nightly scoring runs (a new run, a new key), but an erased member leaves the grid
# only once this has passed.
RFM_GRID_CACHE_SECONDS = 600


def rfm_grid() -> dict | None:
    """Return members per recency × frequency score and their average money score.

    None when the campaigns app has no RFM scores table. Counting the scores of every
    member (about 0.3-0.4 s at 1M members) is kept per scoring run: one query for the
    latest run, and the grid itself (one query) when the cache does not hold it.
    """
    try:
        rfm = apps.get_model("campaigns", "MemberRfm")
        run = apps.get_model("campaigns", "RfmRun")
    except LookupError:
        return None
    latest = run.objects.order_by("-pk").values_list("pk", "created_at").first()
    key = f"dashboards:rfm-grid:{latest[0]}:{latest[1].timestamp()}" if latest else None
    cells = cache.get(key) if key else None
    if cells is None:
        cells = {
            (row["recency_score"], row["frequency_score"]): row
            for row in rfm.objects.values("recency_score", "frequency_score").annotate(
                members=Count("member_id"), monetary=Sum("monetary_score"),
            ).order_by()
        }
        # Scores written without a run (none in the app) are read every time.
        if key:
            cache.set(key, cells, RFM_GRID_CACHE_SECONDS)
    return cells


def store_and_tier_names() -> tuple[dict[int, str], dict[int, str]]:
    """Return stores and tiers by id, for the filters and the tables (2 queries)."""
    store = apps.get_model("members", "Store")
    tier = apps.get_model("rewards", "Tier")
    stores = {pk: f"{code} · {name}" for pk, code, name in
              store.objects.order_by("code").values_list("pk", "code", "name")}
    tiers = dict(tier.objects.order_by("rank").values_list("pk", "name"))
    return stores, tiers


__all__ = [
    "CHURN_CHOICES", "DEFAULT_CHURN_DAYS", "ISSUING_KINDS", "MembersSummary", "Pair",
    "PointsSummary", "SalesSummary", "Scope", "acquisition_months", "aov_by_tier",
    "cac_window", "cohort_triangle", "grain_for", "members_summary", "members_trend",
    "points_summary", "points_trend", "ratio", "rfm_grid", "sales_summary",
    "sales_trend", "store_and_tier_names", "tier_distribution", "value_estimates",
]
