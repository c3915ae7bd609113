"""The daily roll-ups: set-based SQL from the purchases and the ledger into small tables.

For a range of days each table's rows of those days are deleted and rebuilt by one
``INSERT ... SELECT ... GROUP BY`` per table, in one transaction, so a run is
all-or-nothing and running it twice gives the same rows. The SELECTs are Django's own
(compiled for the database in use, so the same code runs on PostgreSQL and SQLite);
only the ``INSERT INTO`` around them is ours.

- :func:`rollup_days` rolls up a range of days (the nightly job, the "recompute"
  action, a rebuild month by month);
- :func:`rollup_today_refresh` rolls up today when a dashboard opens and today's rows
  are older than :data:`LIVE_MAX_AGE_SECONDS`: today is computed live;
- :func:`rollup_rebuild` rebuilds everything from the first purchase, enrolment or
  ledger row, in one pass;
- :func:`value_estimates_compute` fills the lifetime value estimates (nightly).
"""

from __future__ import annotations

import time as clock
from contextlib import contextmanager
from datetime import date, timedelta

from django.apps import apps
from django.db import connection, transaction
from django.db.models import Count, F, Min, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncDate, TruncMonth
from django.utils import timezone

from loyalty_admin.dashboards.periods import day_start, month_first, month_last
from loyalty_admin.models import (
    CohortMonth,
    EnrolmentDay,
    MemberCountPart,
    MemberDay,
    PointsDay,
    RollupRun,
    SalesDay,
    ValueEstimate,
)
from members.models import Member, PointsEntry, Purchase
from rewards.models import MemberTier

# Today's rows are rebuilt when a dashboard opens and they are older than this. At 1M
# members a live run reads the history of the members who bought since the previous
# one (a few seconds; about 25 s for a whole day's members), so a much shorter age
# would keep a core busy while a dashboard is open.
LIVE_MAX_AGE_SECONDS = 300
# A live run that has not finished after this long is taken for dead and asked again.
LIVE_STALE_SECONDS = 600
# Ledger kinds that make a member active without a purchase: spending points. Earning
# them (an accrual) comes with a purchase, which counts already: reading accruals again
# would double the member-days table for nothing.
SPENDING_KINDS = (PointsEntry.Kind.REDEMPTION,)
# PostgreSQL advisory-lock key of the roll-up: one run at a time ("DASH").
_LOCK_KEY = 0x44415348

TRIGGER_NIGHTLY, TRIGGER_LIVE, TRIGGER_RECOMPUTE, TRIGGER_REBUILD = (
    "nightly", "live", "recompute", "rebuild",
)


# ------------------------------------------------------------------ SQL plumbing


def _insert_select(model, columns: list[str], queryset: QuerySet) -> int:
    """Run ``INSERT INTO <model's table> (columns) <queryset's SELECT>``; return the rows.

    ``queryset`` must be a ``values_list`` of exactly ``columns``' values, in order.
    """
    sql, params = queryset.query.sql_with_params()
    table = model._meta.db_table
    names = ", ".join(connection.ops.quote_name(model._meta.get_field(c).column) for c in columns)
    with connection.cursor() as cursor:
        # Table and column names are the model's; the SELECT is Django's compiled query.
        cursor.execute(f"INSERT INTO {table} ({names}) {sql}", params)  # noqa: S608
        return cursor.rowcount


def _execute(sql: str, params: list) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _lock() -> None:
    """Serialise roll-up runs (nightly, live, recompute) until the transaction ends.

    SQLite writers are serialised by the database itself. On PostgreSQL the run also
    raises ``work_mem`` and turns JIT compilation off: the planner's estimates of these
    aggregates are high enough to compile them, which costs more (0.7 s a statement)
    than it saves.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
            cursor.execute("SET LOCAL jit = off")
            # The member count parts sort and group millions of rows in a rebuild: in
            # memory rather than in temporary files (one roll-up runs at a time).
            cursor.execute("SET LOCAL work_mem = '256MB'")


def _tier(*, joined: bool = False):
    """The member's current tier id (empty without a tier or without a member).

    A subquery on the tier's primary key rather than a join through the member table:
    the rows of a purchase or ledger roll-up of a few days need nothing else from the
    member. ``joined`` (a rebuild, every row of the tables): a join instead, read once,
    rather than a lookup per row (13 million for the purchases).
    """
    if joined:
        return F("member__tier_status__tier_id")
    tier = MemberTier.objects.filter(member_id=OuterRef("member_id")).values("tier_id")
    return Subquery(tier[:1])


# ------------------------------------------------------------------ the tables


def _sales(first: date, last: date, *, joined: bool = False) -> int:
    purchases = (
        Purchase.objects.filter(purchased_at__gte=day_start(first),
                                purchased_at__lt=day_start(last + timedelta(days=1)))
        .annotate(
            rollup_day=TruncDate("purchased_at"), rollup_tier=_tier(joined=joined),
            rollup_member=Q(member_id__isnull=False),
        )
        .values("rollup_day", "store_id", "rollup_tier", "rollup_member")
        .annotate(n=Count("id"), revenue=Sum("total"), refunded=Sum("refunded_total"))
        .values_list("rollup_day", "store_id", "rollup_tier", "rollup_member", "n", "revenue",
                     "refunded")
        .order_by()
    )
    return _insert_select(
        SalesDay,
        ["day", "store_id", "tier_id", "is_member", "purchases", "revenue", "refunded"],
        purchases,
    )


def _points(first: date, last: date, *, joined: bool = False) -> int:
    entries = (
        PointsEntry.objects.filter(created_at__gte=day_start(first),
                                   created_at__lt=day_start(last + timedelta(days=1)))
        .annotate(rollup_day=TruncDate("created_at"), rollup_tier=_tier(joined=joined))
        .values("rollup_day", "rollup_tier", "kind")
        .annotate(
            points_in=Coalesce(Sum("amount", filter=Q(amount__gt=0)), 0),
            points_out=Coalesce(Sum(-F("amount"), filter=Q(amount__lt=0)), 0),
            n=Count("id"),
        )
        .values_list("rollup_day", "rollup_tier", "kind", "points_in", "points_out", "n")
        .order_by()
    )
    return _insert_select(
        PointsDay, ["day", "tier_id", "kind", "points_in", "points_out", "entries"], entries
    )


def _enrolments(first: date, last: date) -> int:
    members = (
        Member.objects.filter(enrolled_at__gte=day_start(first),
                              enrolled_at__lt=day_start(last + timedelta(days=1)))
        .annotate(rollup_day=TruncDate("enrolled_at"), rollup_tier=F("tier_status__tier_id"))
        .values("rollup_day", "rollup_tier")
        .annotate(n=Count("id"))
        .values_list("rollup_day", "rollup_tier", "n")
        .order_by()
    )
    return _insert_select(EnrolmentDay, ["day", "tier_id", "members"], members)


def _member_days(first: date, last: date, *, joined: bool = False) -> int:
    start, end = day_start(first), day_start(last + timedelta(days=1))
    bought = (
        Purchase.objects.filter(member__isnull=False, purchased_at__gte=start, purchased_at__lt=end)
        .annotate(
            rollup_day=TruncDate("purchased_at"), rollup_tier=_tier(joined=joined),
            rollup_enrolled=TruncDate("member__enrolled_at"),
        )
        .values("rollup_day", "member_id", "store_id", "rollup_tier", "rollup_enrolled")
        .annotate(n=Count("id"), revenue=Sum("total"))
        .values_list("rollup_day", "member_id", "store_id", "rollup_tier", "rollup_enrolled",
                     "n", "revenue")
        # Stored in day order, a period's member-days are neighbours on disk.
        .order_by("rollup_day")
    )
    rows = _insert_select(
        MemberDay,
        ["day", "member_id", "store_id", "tier_id", "enrolled_on", "purchases", "revenue"],
        bought,
    )
    moved = (
        PointsEntry.objects.filter(
            kind__in=SPENDING_KINDS, created_at__gte=start, created_at__lt=end
        )
        .annotate(
            rollup_day=TruncDate("created_at"), rollup_tier=_tier(joined=joined),
            rollup_enrolled=TruncDate("member__enrolled_at"),
        )
        .values("rollup_day", "member_id", "rollup_tier", "rollup_enrolled")
        .annotate(spent=Coalesce(Sum(-F("amount")), 0))
        .values_list("rollup_day", "member_id", "rollup_tier", "rollup_enrolled", "spent")
        .order_by()
    )
    rows += _insert_select(
        MemberDay, ["day", "member_id", "tier_id", "enrolled_on", "points_spent"], moved,
    )
    _first_purchases_flag(first, last)
    return rows


def _first_purchases_flag(first: date, last: date) -> None:
    """Mark the member-days that are the member's first purchase ever.

    For every member who bought in the range: their first day with a purchase in the
    whole table (the rebuild starts at the first purchase, so every earlier day is
    there) is flagged if it falls in the range. A purchase recorded late for an earlier
    day makes a later flag wrong: it is cleared. One grouped pass, not a probe per row.
    """
    table = connection.ops.quote_name(MemberDay._meta.db_table)
    buyers = (f"SELECT b.member_id FROM {table} b "  # noqa: S608 - the model's table
              f"WHERE b.day >= %s AND b.day <= %s AND b.purchases > 0")
    # Plain SQL that PostgreSQL and SQLite (3.33+) both run; the names are the model's.
    _execute(
        f"UPDATE {table} SET first_purchase = %s FROM ("  # noqa: S608
        f"SELECT f.member_id AS buyer, MIN(f.day) AS first_day FROM {table} f "
        f"WHERE f.purchases > 0 AND f.member_id IN ({buyers}) GROUP BY f.member_id) firsts "
        f"WHERE {table}.member_id = firsts.buyer AND {table}.day = firsts.first_day "
        f"AND {table}.purchases > 0 AND {table}.day >= %s AND {table}.day <= %s",
        [True, first, last, first, last],
    )
    _execute(
        f"UPDATE {table} SET first_purchase = %s "  # noqa: S608
        f"WHERE first_purchase = %s AND day > %s AND member_id IN ({buyers})",
        [False, True, last, first, last],
    )


def _cohorts(first: date, last: date) -> int:
    """Rebuild the cohort rows of every month the range touches, from the member-days."""
    months_first, months_last = month_first(first), month_last(last)
    CohortMonth.objects.filter(month__gte=months_first, month__lte=months_last).delete()
    bought = MemberDay.objects.filter(day__gte=months_first, day__lte=months_last, purchases__gt=0)
    per_tier = (
        bought.annotate(cohort_m=TruncMonth("enrolled_on"), month_m=TruncMonth("day"),
                        total=Value(False))
        .values("cohort_m", "month_m", "tier_id", "total")
        .annotate(n=Count("member_id", distinct=True))
        .values_list("cohort_m", "month_m", "tier_id", "total", "n")
        .order_by()
    )
    rows = _insert_select(
        CohortMonth, ["cohort", "month", "tier_id", "all_tiers", "members"], per_tier
    )
    every_tier = (
        bought.annotate(cohort_m=TruncMonth("enrolled_on"), month_m=TruncMonth("day"),
                        total=Value(True))
        .values("cohort_m", "month_m", "total")
        .annotate(n=Count("member_id", distinct=True))
        .values_list("cohort_m", "month_m", "total", "n")
        .order_by()
    )
    rows += _insert_select(CohortMonth, ["cohort", "month", "all_tiers", "members"], every_tier)
    return rows


# ------------------------------------------------------------------ member counts

# The members whose parts a run replaces: those whose member-days in the range changed
# (see _count_parts_after).
_AFFECTED = "dash_count_members"
_IN_AFFECTED = "md.member_id IN (SELECT member_id FROM dash_count_members)"
# Each member's first purchase day and its tier, while every part is rebuilt.
_FIRSTS = "dash_count_firsts"
# The member-days with a store, while the stores' parts are rebuilt.
_STORE_DAYS = "dash_count_store_days"
# A run's changes to the parts, taken away and added back, before they are applied.
_DELTAS = "dash_count_deltas"
# The range's member-days as they were before the run (what the parts were built from).
_OLD_DAYS = "dash_count_old_days"
# The columns of a member-day that its parts depend on (not revenue nor points spent).
_PART_INPUTS = "member_id, day, store_id, tier_id, purchases, enrolled_on"


_COUNT_COLUMNS = MemberCountPart.MEASURES


def _part_row(source: str, low: str, high: str, where: str = "", **columns: str) -> str:
    """Return a SELECT of one kind of part: the filter, the pair of days, each measure."""
    values = ", ".join(f"{columns.get(name, '0')} AS {name}" for name in _COUNT_COLUMNS)
    return (f"SELECT {source}.store_id, {source}.tier_id, {low} AS low, {high} AS high, "  # noqa: S608
            f"{values} FROM {source}{f' WHERE {where}' if where else ''}")


def _count_parts_sql(members: str, *, first: date | None, last: date | None,
                     skip_range: bool = False, family: str | int | None = None,
                     firsts: str | None = None, old_days: str | None = None,
                     days_table: str | None = None) -> tuple[str, list]:
    """Return the WITH ... of the count parts (``parts``) of ``members``' member-days.

    ``members`` is a condition on ``md`` (the member-day table). Each member's days form
    one sequence per filter: every store and tier (0, 0), each store (s, 0), each tier
    (0, t) and each store and tier (s, t); in each, a day knows the member's previous and
    next day with a purchase (and the previous active day). Which pairs each day adds
    to, and why they make the counts exact, is in :func:`selectors.members_summary`.

    With ``first`` and ``last``, only the days whose parts a run over those days can
    change are read: the days inside, the last day before and the first day after in
    each sequence (their next or previous day is inside, or none). ``skip_range`` leaves
    out the member-days inside (a member's parts before the run gave them any).

    ``family`` limits the filters, so that a rebuild can fill the table in pieces whose
    rows never meet: "all" (0, 0), "tiers" (0, t), "stores" every (s, 0) and (s, t),
    a store's id its own (s, 0) and (s, t); None is every filter. ``firsts``: a table of
    each member's first purchase day and its tier (``member_id``, ``first_day``,
    ``first_tier``), for pieces that do not read all of a member's days. ``old_days``:
    a table of member-days (:data:`_PART_INPUTS`) read along with the member-days of
    ``members`` (with ``skip_range``: the range's days as they were before the run, so
    that the parts are the ones the run replaces). ``days_table``: read the member-days
    from this table of :data:`_PART_INPUTS` rather than from the member-day table.
    """
    md = days_table or connection.ops.quote_name(MemberDay._meta.db_table)
    params: list = []
    where = members
    if skip_range:
        where += " AND NOT (md.day >= %s AND md.day <= %s)"
        params += [first, last]
    if isinstance(family, int):
        where += " AND md.store_id = %s"
        params.append(family)
    elif family == "stores":
        where += " AND md.store_id IS NOT NULL"
    elif family == "tiers":
        where += " AND md.tier_id IS NOT NULL"
    if first is None:
        buys = acts = "1 = 1"
    else:
        inside = "(q.day >= %s AND q.day <= %s)"
        buys = (f"({inside} OR (q.day < %s AND (q.next IS NULL OR q.next >= %s)) "
                f"OR (q.day > %s AND (q.prev IS NULL OR q.prev <= %s)))")
        acts = f"({inside} OR (q.day > %s AND (q.prev IS NULL OR q.prev <= %s)))"
        params += [first, last, first, first, last, last, first, last, last, last]
    group = "SUM(md.purchases) AS n, MIN(md.enrolled_on) AS enrolled"
    # The later of the previous purchase and the enrolment, at most the day itself:
    # "enrolled by the churn window's start and no purchase from it to this day".
    later = "CASE WHEN b.prev IS NOT NULL AND b.prev > b.enrolled THEN b.prev ELSE b.enrolled END"
    churn_low = f"CASE WHEN {later} > b.day THEN b.day ELSE {later} END"
    one = "CASE WHEN b.n = 1 THEN 1 ELSE 0 END"
    parts = " UNION ALL ".join([
        _part_row("b", "b.day", "b.day", buy_days="1", one_days=one, purchases="b.n"),
        # The churn pair is usually (previous, day): then it is counted on the same row.
        _part_row("b", "b.prev", "b.day", "b.prev IS NOT NULL", buy_gaps="1",
                  one_previous=one,
                  churn_gaps=f"CASE WHEN {churn_low} = b.prev THEN 1 ELSE 0 END"),
        _part_row("b", churn_low, "b.day", f"b.prev IS NULL OR {churn_low} <> b.prev",
                  churn_gaps="1"),
        _part_row("b", "b.day", "b.next", "b.n = 1 AND b.next IS NOT NULL", one_next="1"),
        _part_row("b", "b.prev", "b.next",
                  "b.n = 1 AND b.prev IS NOT NULL AND b.next IS NOT NULL", one_span="1"),
        _part_row("fb", "fb.first_day", "fb.day", first="1"),
        _part_row("a", "a.day", "a.day", active_days="1"),
        _part_row("a", "a.prev", "a.day", "a.prev IS NOT NULL", active_gaps="1"),
    ])
    if firsts:
        first_tiers = f"first_tiers AS (SELECT member_id, first_day, first_tier FROM {firsts})"  # noqa: S608
    else:
        first_tiers = (
            "firsts AS (SELECT member_id, MIN(day) AS first_day FROM src WHERE purchases > 0 "
            "GROUP BY member_id), "
            "first_tiers AS (SELECT s.member_id, f.first_day, MAX(s.tier_id) AS first_tier "
            "FROM src s JOIN firsts f ON f.member_id = s.member_id AND f.first_day = s.day "
            "WHERE s.purchases > 0 GROUP BY s.member_id, f.first_day)"
        )
    # One member's days per filter: (0, 0), (s, 0), (0, t), (s, t).
    sequences = []
    # A member has one member-day per day and store (one tier each), so a store's
    # sequences need no grouping: only the sequences across stores add days up.
    one_row = "md.purchases AS n, md.enrolled_on AS enrolled"
    if family in (None, "all"):
        sequences.append(f"SELECT md.member_id, 0 AS store_id, 0 AS tier_id, md.day, {group} "  # noqa: S608
                         "FROM src md GROUP BY md.member_id, md.day")
    if family in (None, "stores") or isinstance(family, int):
        sequences.append(f"SELECT md.member_id, md.store_id, 0 AS tier_id, md.day, {one_row} "  # noqa: S608
                         "FROM src md WHERE md.store_id IS NOT NULL")
    if family in (None, "tiers"):
        sequences.append(f"SELECT md.member_id, 0 AS store_id, md.tier_id, md.day, {group} "  # noqa: S608
                         "FROM src md WHERE md.tier_id IS NOT NULL "
                         "GROUP BY md.member_id, md.tier_id, md.day")
    if family in (None, "stores") or isinstance(family, int):
        sequences.append(f"SELECT md.member_id, md.store_id, md.tier_id, md.day, {one_row} "  # noqa: S608
                         "FROM src md WHERE md.store_id IS NOT NULL AND md.tier_id IS NOT NULL")
    source = f"SELECT {_PART_INPUTS} FROM {md} md WHERE {where}"  # noqa: S608
    if old_days:
        # The same members' rows of the old table (the condition names md's columns).
        source += f" UNION ALL SELECT {_PART_INPUTS} FROM {old_days} md WHERE {members}"  # noqa: S608
    sql = (
        f"WITH src AS ({source}), "  # noqa: S608 - names are the model's and ours
        f"{first_tiers}, "
        f"days AS ({' UNION ALL '.join(sequences)}), "
        "buys AS (SELECT d.member_id, d.store_id, d.tier_id, d.day, d.n, d.enrolled, "
        "LAG(d.day) OVER w AS prev, LEAD(d.day) OVER w AS next FROM days d WHERE d.n > 0 "
        "WINDOW w AS (PARTITION BY d.member_id, d.store_id, d.tier_id ORDER BY d.day)), "
        # Points spent make a member active; at one store only purchases do.
        "acts AS (SELECT d.store_id, d.tier_id, d.day, LAG(d.day) OVER (PARTITION BY "
        "d.member_id, d.tier_id ORDER BY d.day) AS prev FROM days d WHERE d.store_id = 0), "
        f"b AS (SELECT q.* FROM buys q WHERE {buys}), "
        f"a AS (SELECT q.* FROM acts q WHERE {acts}), "
        # A sequence's first day, when the member's first purchase ever was in its tier.
        "fb AS (SELECT b.store_id, b.tier_id, b.day, f.first_day FROM b JOIN first_tiers f "
        "ON f.member_id = b.member_id WHERE b.prev IS NULL "
        "AND (b.tier_id = 0 OR b.tier_id = f.first_tier)), "
        f"parts AS ({parts}) "
    )
    return sql, params


def _count_parts_add(members: str, params: list, *, sign: int, first: date | None,
                     last: date | None, skip_range: bool = False,
                     family: str | int | None = None, firsts: str | None = None,
                     old_days: str | None = None, days_table: str | None = None,
                     deltas: bool = False) -> int:
    """Add (``sign`` 1) or take away (-1) the count parts of the member-days of ``members``.

    ``deltas``: into the run's table of changes (:data:`_DELTAS`, applied at the end by
    :func:`_count_parts_apply`) rather than into the parts. The other arguments are
    :func:`_count_parts_sql`'s (``old_days`` needs a ``members`` without parameters).
    """
    if old_days and params:
        raise ValueError("The old member-days are read with a condition without parameters.")
    sql, sql_params = _count_parts_sql(members, first=first, last=last, skip_range=skip_range,
                                       family=family, firsts=firsts, old_days=old_days,
                                       days_table=days_table)
    table = connection.ops.quote_name(MemberCountPart._meta.db_table)
    columns = ", ".join(_COUNT_COLUMNS)
    sums = ", ".join(f"%s * SUM({name})" for name in _COUNT_COLUMNS)
    if deltas:
        return _execute(
            f"{sql}INSERT INTO {_DELTAS} (store_id, tier_id, low, high, {columns}) "  # noqa: S608
            f"SELECT store_id, tier_id, low, high, {sums} FROM parts "
            "GROUP BY store_id, tier_id, low, high",
            [*params, *sql_params, *([sign] * len(_COUNT_COLUMNS))],
        )
    updates = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in _COUNT_COLUMNS)
    # One row per key: a run's change is added in place (PostgreSQL and SQLite upsert).
    return _execute(
        f"{sql}INSERT INTO {table} (store_id, tier_id, low, high, {columns}) "  # noqa: S608
        f"SELECT store_id, tier_id, low, high, {sums} FROM parts "
        "WHERE 1 = 1 GROUP BY store_id, tier_id, low, high "
        f"ON CONFLICT (store_id, tier_id, low, high) DO UPDATE SET {updates}",
        [*params, *sql_params, *([sign] * len(_COUNT_COLUMNS))],
    )


def _count_parts_before(first: date, last: date) -> None:
    """Keep the member-days of ``first`` to ``last`` as they are before the run (step 1).

    The parts a run replaces were built from them; only what the parts depend on is
    kept (a few columns of one day's 45,000 rows at 1M members).
    """
    md = connection.ops.quote_name(MemberDay._meta.db_table)
    table = connection.ops.quote_name(MemberCountPart._meta.db_table)
    for name in (_DELTAS, _OLD_DAYS, _AFFECTED):
        _execute(f"DROP TABLE IF EXISTS {name}", [])
    # The parts' own columns and types; no row (plain SQL of PostgreSQL and SQLite).
    _execute(f"CREATE TEMPORARY TABLE {_DELTAS} AS SELECT store_id, tier_id, low, high, "  # noqa: S608
             f"{', '.join(_COUNT_COLUMNS)} FROM {table} WHERE 1 = 0", [])
    _execute(f"CREATE TEMPORARY TABLE {_OLD_DAYS} AS SELECT {_PART_INPUTS} FROM {md} "  # noqa: S608
             "WHERE day >= %s AND day <= %s", [first, last])


def _analyze_affected() -> None:
    # A temporary table has no statistics: without them PostgreSQL guesses its size and
    # may read every member-day instead of the affected members' through their index.
    if connection.vendor == "postgresql":
        _execute(f"ANALYZE {_AFFECTED}", [])


def _count_parts_after(first: date, last: date) -> None:
    """Replace the parts of the members whose member-days of ``first`` to ``last`` changed.

    A member's parts depend on their own member-days only, so a member whose days in
    the range are the same as before the run (most of them when a day is rolled up
    again: the nightly run of a day the live refresh rolled up, a recompute) keeps
    them: only the members with a day added, removed or changed (receipts, purchases,
    tier, store) are read. Their parts as they were (the days outside the range and the
    kept old ones) are taken away and their new parts added, both for the days the
    range can change only; step 3 writes the difference.
    """
    md = connection.ops.quote_name(MemberDay._meta.db_table)
    _execute(f"CREATE TEMPORARY TABLE {_AFFECTED} (member_id BIGINT PRIMARY KEY)", [])
    now = f"SELECT {_PART_INPUTS} FROM {md} WHERE day >= %s AND day <= %s"  # noqa: S608
    before = f"SELECT {_PART_INPUTS} FROM {_OLD_DAYS}"  # noqa: S608
    # EXCEPT both ways: the rows only one side has (NULLs compare equal in EXCEPT).
    changed = _execute(
        f"INSERT INTO {_AFFECTED} (member_id) SELECT member_id FROM ("  # noqa: S608
        f"SELECT gone.member_id FROM ({before} EXCEPT {now}) gone UNION "
        f"SELECT came.member_id FROM ({now} EXCEPT {before}) came) members",
        [first, last, first, last],
    )
    if changed:
        _analyze_affected()
        _count_parts_add(_IN_AFFECTED, [], sign=-1, first=first, last=last, skip_range=True,
                         old_days=_OLD_DAYS, deltas=True)
        _count_parts_add(_IN_AFFECTED, [], sign=1, first=first, last=last, deltas=True)
    _execute(f"DROP TABLE {_AFFECTED}", [])
    _execute(f"DROP TABLE {_OLD_DAYS}", [])
    _count_parts_apply()


def _count_parts_apply() -> int:
    """Add the run's net changes to the parts (step 3); return the keys changed.

    Most parts a run takes away it adds back unchanged (a day rolled up again, the
    neighbouring days of its members): summed per key first, only the keys whose
    measures changed are written, rather than every key twice into the large table.
    """
    table = connection.ops.quote_name(MemberCountPart._meta.db_table)
    columns = ", ".join(_COUNT_COLUMNS)
    sums = ", ".join(f"SUM({name})" for name in _COUNT_COLUMNS)
    changed = " OR ".join(f"SUM({name}) <> 0" for name in _COUNT_COLUMNS)
    updates = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in _COUNT_COLUMNS)
    rows = _execute(
        f"INSERT INTO {table} (store_id, tier_id, low, high, {columns}) "  # noqa: S608
        f"SELECT store_id, tier_id, low, high, {sums} FROM {_DELTAS} WHERE 1 = 1 "
        f"GROUP BY store_id, tier_id, low, high HAVING {changed} "
        f"ON CONFLICT (store_id, tier_id, low, high) DO UPDATE SET {updates}", [],
    )
    _execute(f"DROP TABLE {_DELTAS}", [])
    return rows


def _count_parts_rebuild() -> None:
    """Fill the count parts from every member-day (the table is empty).

    In pieces whose rows never meet (every store and tier, the tiers, then each store),
    so each piece inserts its rows once: pieces of members would add to the same rows
    again and again. Each member's first purchase (and its tier) is computed once, for
    the pieces that see some of a member's days only.
    """
    md = connection.ops.quote_name(MemberDay._meta.db_table)
    _execute(f"DROP TABLE IF EXISTS {_FIRSTS}", [])
    _execute(
        f"CREATE TEMPORARY TABLE {_FIRSTS} AS SELECT md.member_id, f.first_day, "  # noqa: S608
        f"MAX(md.tier_id) AS first_tier FROM {md} md JOIN (SELECT member_id, "
        f"MIN(day) AS first_day FROM {md} WHERE purchases > 0 GROUP BY member_id) f "
        "ON f.member_id = md.member_id AND f.first_day = md.day WHERE md.purchases > 0 "
        "GROUP BY md.member_id, f.first_day", [],
    )
    for family in ("all", "tiers"):
        _count_parts_add("1 = 1", [], sign=1, first=None, last=None, family=family,
                         firsts=_FIRSTS)
    # Then store by store (one store's sequences in memory at a time), from a copy of the
    # member-days with a store, indexed by store: one read of the member-day table
    # rather than one per store.
    _execute(f"DROP TABLE IF EXISTS {_STORE_DAYS}", [])
    _execute(f"CREATE TEMPORARY TABLE {_STORE_DAYS} AS SELECT {_PART_INPUTS} FROM {md} "  # noqa: S608
             "WHERE store_id IS NOT NULL ORDER BY store_id", [])
    _execute(f"CREATE INDEX {_STORE_DAYS}_store ON {_STORE_DAYS} (store_id)", [])
    if connection.vendor == "postgresql":
        _execute(f"ANALYZE {_STORE_DAYS}", [])
    stores = Purchase._meta.get_field("store").related_model.objects.order_by("pk").values_list(
        "pk", flat=True)
    for store in stores:
        _count_parts_add("1 = 1", [], sign=1, first=None, last=None, family=store,
                         firsts=_FIRSTS, days_table=_STORE_DAYS)
    _execute(f"DROP TABLE {_STORE_DAYS}", [])
    _execute(f"DROP TABLE {_FIRSTS}", [])


# ------------------------------------------------------------------ runs


@contextmanager
def _member_day_indexes_later():
    """On PostgreSQL, fill the emptied member-days without their indexes, then index them.

    For a rebuild: one sort per index afterwards instead of 10 million inserts into
    each index in random order (and the first-purchase flags updated with no index to
    keep up). The indexes are dropped inside the run's transaction: a failed run keeps
    them, and meanwhile only the roll-up itself reads the member-days.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.schema_editor() as editor:
        for index in MemberDay._meta.indexes:
            editor.remove_index(MemberDay, index)
    yield
    with connection.schema_editor() as editor:
        for index in MemberDay._meta.indexes:
            editor.add_index(MemberDay, index)



def rollup_days(
    *, first: date, last: date, trigger: str = TRIGGER_RECOMPUTE, user_id: int | None = None,
    run_id: int | None = None, whole_history: bool = False,
) -> RollupRun:
    """Rebuild every roll-up table's rows of days ``first`` to ``last`` (both included).

    One transaction: the dashboards see the old rows or the new ones, never half. Safe
    to run twice; runs are serialised. Returns the logged run (``run_id``: a run logged
    when it was asked for). ``whole_history``: every roll-up was just emptied and the
    range is all of history (the rebuild), so the member count parts are built from
    scratch rather than adjusted.
    """
    if last < first:
        raise ValueError("The last day comes before the first.")
    started = clock.monotonic()
    with transaction.atomic():
        _lock()
        run = RollupRun.objects.filter(pk=run_id).first() if run_id else None
        if run is None:
            run = RollupRun.objects.create(
                first_day=first, last_day=last, trigger=trigger, requested_by_id=user_id
            )
        if whole_history:
            if connection.vendor == "postgresql":
                # Sorting ten million member-days per window in memory, not in temporary
                # files: one rebuild at a time, rarely.
                _execute("SET LOCAL work_mem = '1GB'", [])
            # A live run between the rebuild's emptying and this run would count twice.
            MemberCountPart.objects.all().delete()
        else:
            _count_parts_before(first, last)
        for model in (SalesDay, PointsDay, EnrolmentDay, MemberDay):
            model.objects.filter(day__gte=first, day__lte=last).delete()
        _sales(first, last, joined=whole_history)
        _points(first, last, joined=whole_history)
        _enrolments(first, last)
        if whole_history:
            with _member_day_indexes_later():
                _member_days(first, last, joined=True)
        else:
            _member_days(first, last)
        _cohorts(first, last)
        if whole_history:
            _count_parts_rebuild()
        else:
            _count_parts_after(first, last)
        run.finished_at = timezone.now()
        run.seconds = round(clock.monotonic() - started, 3)
        run.save(update_fields=["finished_at", "seconds"])
    return run


def rollup_today_refresh(*, max_age_seconds: int | None = None) -> bool:
    """Have today rolled up again if its rows are older than ``max_age_seconds``.

    Called when a dashboard opens. The work is a Celery task, so a page never waits for
    it (at full scale it takes tens of seconds); without a broker (the embedded setup)
    the task runs at once, in the request. A run requested and not yet finished counts
    as fresh, so many pages opened at once ask for one run. Returns whether it asked.
    """
    from loyalty_admin.tasks import rollups_today
    from members.broker_health import task_submit

    if max_age_seconds is None:
        max_age_seconds = LIVE_MAX_AGE_SECONDS
    today = timezone.localdate()
    now = timezone.now()
    fresh = Q(finished_at__gte=now - timedelta(seconds=max_age_seconds)) | Q(
        finished_at__isnull=True, trigger=TRIGGER_LIVE,
        started_at__gte=now - timedelta(seconds=max(max_age_seconds, LIVE_STALE_SECONDS)),
    )
    if RollupRun.objects.filter(fresh, first_day__lte=today, last_day__gte=today).exists():
        return False
    run = RollupRun.objects.create(first_day=today, last_day=today, trigger=TRIGGER_LIVE)
    # One row per day is enough in the log for the live refresh.
    RollupRun.objects.filter(trigger=TRIGGER_LIVE, first_day=today, id__lt=run.pk,
                             finished_at__isnull=False).delete()
    # A page never fails for the task queue: with the broker down, today waits for it.
    if not task_submit(rollups_today, run.pk):
        run.delete()
        return False
    return True


def history_first_day() -> date | None:
    """Return the first day with a purchase, an enrolment or a ledger row (None: empty)."""
    firsts = [
        Purchase.objects.aggregate(first=Min("purchased_at"))["first"],
        Member.objects.aggregate(first=Min("enrolled_at"))["first"],
        PointsEntry.objects.aggregate(first=Min("created_at"))["first"],
    ]
    firsts = [timezone.localdate(moment) for moment in firsts if moment is not None]
    return min(firsts) if firsts else None


def rollup_rebuild(*, user_id: int | None = None, progress=None) -> list[RollupRun]:
    """Rebuild every roll-up from the first day of history to today, in one run."""
    first = history_first_day()
    today = timezone.localdate()
    models = (SalesDay, PointsDay, EnrolmentDay, MemberDay, CohortMonth, MemberCountPart)
    with transaction.atomic():
        _lock()
        if connection.vendor == "postgresql":
            # Emptied at once, without 18 million dead rows for the inserts to step over
            # (a DELETE leaves them until a vacuum). A short exclusive lock.
            names = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in models)
            _execute(f"TRUNCATE {names}", [])
        else:
            for model in models:
                model.objects.all().delete()
    if first is None:
        return []
    # One pass over the whole history: the purchases and the ledger are read once
    # (month by month, a table not stored in time order would be read once a month).
    run = rollup_days(first=first, last=today, trigger=TRIGGER_REBUILD, user_id=user_id,
                      whole_history=True)
    if progress:
        progress(run)
    return [run]


# ------------------------------------------------------------------ value estimates


def value_estimates_compute(*, as_of: date) -> int:
    """Compute the lifetime value inputs per tier and RFM segment as of ``as_of``.

    Over the 12 months to ``as_of`` and the 12 months before, per member: whether they
    bought in each, and their revenue in the last 12 months; then per group: members who
    bought, those of them who also bought the year before, and the revenue. Grouped by
    the member's current tier and current RFM segment. Replaces the rows of ``as_of``.
    """
    year_first = as_of - timedelta(days=364)
    before_first = year_first - timedelta(days=365)
    table = connection.ops.quote_name(MemberDay._meta.db_table)
    tier_table = connection.ops.quote_name(apps.get_model("rewards", "MemberTier")._meta.db_table)
    # Table names are the models'; every value is a parameter.
    per_member = (
        f"SELECT md.member_id AS member_id, "  # noqa: S608
        f"MAX(CASE WHEN md.day >= %s AND md.purchases > 0 THEN 1 ELSE 0 END) AS now_b, "
        f"MAX(CASE WHEN md.day < %s AND md.purchases > 0 THEN 1 ELSE 0 END) AS before_b, "
        f"SUM(CASE WHEN md.day >= %s THEN md.revenue ELSE 0 END) AS revenue "
        f"FROM {table} md WHERE md.day >= %s AND md.day <= %s GROUP BY md.member_id"
    )
    params = [year_first, year_first, year_first, before_first, as_of]
    groups = [("all", "''", "")]
    groups.append(("tier", "COALESCE(CAST(mt.tier_id AS VARCHAR(20)), '')",
                   f"LEFT JOIN {tier_table} mt ON mt.member_id = m.member_id"))
    try:
        rfm = apps.get_model("campaigns", "MemberRfm")
    except LookupError:
        rfm = None
    if rfm is not None:
        rfm_table = connection.ops.quote_name(rfm._meta.db_table)
        groups.append(("segment", "COALESCE(rfm.segment, '')",
                       f"LEFT JOIN {rfm_table} rfm ON rfm.member_id = m.member_id"))
    rows = []
    with transaction.atomic():
        ValueEstimate.objects.filter(computed_on=as_of).delete()
        with connection.cursor() as cursor:
            for group, key, join in groups:
                # A constant cannot be grouped by on PostgreSQL: "all" is one row anyway.
                group_by = f"GROUP BY {key}" if join else ""
                cursor.execute(
                    f"SELECT {key} AS k, SUM(m.now_b), SUM(CASE WHEN m.now_b = 1 AND "  # noqa: S608
                    f"m.before_b = 1 THEN 1 ELSE 0 END), SUM(m.before_b), SUM(m.revenue) "
                    f"FROM ({per_member}) m {join} {group_by}",
                    params,
                )
                rows += [
                    ValueEstimate(
                        computed_on=as_of, group=group, key=k or "", active_members=now or 0,
                        retained_members=kept or 0, previous_members=before or 0,
                        revenue=revenue or 0,
                    )
                    for k, now, kept, before, revenue in cursor.fetchall()
                ]
        ValueEstimate.objects.bulk_create(rows)
        ValueEstimate.objects.filter(computed_on__lt=as_of - timedelta(days=7)).delete()
    return len(rows)


def rollup_nightly() -> RollupRun:
    """The nightly job: roll up yesterday and the day before (late receipts), then value."""
    yesterday = timezone.localdate() - timedelta(days=1)
    run = rollup_days(first=yesterday - timedelta(days=1), last=yesterday,
                      trigger=TRIGGER_NIGHTLY)
    value_estimates_compute(as_of=yesterday)
    return run
