"""The periodic tier evaluation, set-based in the database, and its impact preview.

One aggregate over purchases (or accruals) gives every active member's qualifying
value; a handful of UPDATE ... FROM and INSERT ... SELECT statements then apply
upgrades, grace periods, downgrades and ends of manual tiers, with one history row per
change. Nothing loops over members in Python, so a million members take seconds.
The SQL runs on PostgreSQL and on SQLite 3.33+ alike.
"""

# The SQL is assembled from constant fragments and CASE maps built here; every value
# is a query parameter.
# ruff: noqa: S608

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from members.models import DowngradePolicy, TierBasis
from members.selectors import programme_settings_get
from rewards.models import Tier
from rewards.selectors import qualification_window_start, tiers_ordered


@dataclass(frozen=True)
class TierSpec:
    """A tier as the evaluation sees it (real, or proposed in an impact preview)."""

    id: int
    rank: int
    threshold: Decimal
    invitation_only: bool
    grace_days: int


@dataclass(frozen=True)
class EvaluationResult:
    """What one evaluation changed."""

    enrolled: int = 0
    upgraded: int = 0
    downgraded: int = 0
    manual_ended: int = 0
    entered_grace: int = 0


@dataclass(frozen=True)
class TierImpact:
    """How many members a proposed change of tiers would move."""

    members: int
    up: int
    down: int


def _specs(tiers: list[Tier]) -> list[TierSpec]:
    return [
        TierSpec(t.id, t.rank, Decimal(t.threshold), t.invitation_only, t.grace_days) for t in tiers
    ]


def _value_sql(*, basis: str, start: datetime | None, end: datetime) -> tuple[str, list]:
    """Return SQL giving (member_id, value) for every active member, and its parameters."""
    adapt = connection.ops.adapt_datetimefield_value
    params: list = []
    if basis == TierBasis.POINTS:
        join = (
            "LEFT JOIN members_pointsentry s ON s.member_id = m.id "
            "AND s.kind IN ('accrual', 'return') AND s.created_at <= %s"
        )
        params.append(adapt(end))
        if start is not None:
            join += " AND s.created_at >= %s"
            params.append(adapt(start))
        value = "COALESCE(SUM(s.amount), 0)"
    else:
        join = "LEFT JOIN members_purchase s ON s.member_id = m.id AND s.purchased_at <= %s"
        params.append(adapt(end))
        if start is not None:
            join += " AND s.purchased_at >= %s"
            params.append(adapt(start))
        value = "COALESCE(SUM(s.total - s.refunded_total), 0)"
    sql = (
        f"SELECT m.id AS member_id, {value} AS value FROM members_member m {join} "
        "WHERE m.status = 'active' GROUP BY m.id"
    )
    return sql, params


def _supported_case(specs: list[TierSpec], column: str) -> tuple[str, list]:
    """Return a CASE giving the id of the tier ``column`` (a value) reaches."""
    eligible = [s for s in specs if not s.invitation_only] or specs
    whens, params = [], []
    for spec in sorted(eligible, key=lambda s: s.rank, reverse=True):
        whens.append(f"WHEN {column} >= CAST(%s AS NUMERIC) THEN %s")
        params += [spec.threshold, spec.id]
    lowest = min(eligible, key=lambda s: s.rank).id
    return f"CASE {' '.join(whens)} ELSE %s END", params + [lowest]


def _map_case(column: str, mapping: dict[int, object]) -> tuple[str, list]:
    """Return CASE column WHEN key THEN value ... END with parameters."""
    if not mapping:
        return "NULL", []
    whens, params = [], []
    for key, value in mapping.items():
        whens.append("WHEN %s THEN %s")
        params += [key, value]
    return f"CASE {column} {' '.join(whens)} END", params


def tiers_evaluate(*, now: datetime | None = None) -> EvaluationResult:
    """Run the periodic evaluation for every active member (the nightly Celery task).

    Members without a tier get the one their value supports; a value above the current
    tier upgrades at once; below it starts the tier's grace period, after which the
    member moves down one tier at a time or straight to the supported tier (programme
    setting); a manual tier holds until its end date, then the supported tier applies.
    Safe to run twice: a second run finds nothing left to change.
    """
    tiers = tiers_ordered()
    if not tiers:
        return EvaluationResult()
    settings_row = programme_settings_get()
    now = now or timezone.now()
    today = timezone.localdate(now)
    specs = _specs(tiers)
    value_sql, value_params = _value_sql(
        basis=settings_row.tier_basis,
        start=qualification_window_start(at=now, settings_row=settings_row),
        end=now,
    )
    supported_sql, supported_params = _supported_case(specs, "v.value")
    rank = {s.id: s.rank for s in specs}
    eligible = sorted((s for s in specs if not s.invitation_only), key=lambda s: s.rank)
    lower = {}
    for spec in specs:
        below = [s for s in eligible if s.rank < spec.rank]
        lower[spec.id] = below[-1].id if below else spec.id
    adapt_date = connection.ops.adapt_datefield_value
    cutoff = {s.id: adapt_date(today - timedelta(days=s.grace_days)) for s in specs}
    now_db = connection.ops.adapt_datetimefield_value(now)
    day_start_db = connection.ops.adapt_datetimefield_value(
        timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    )
    today_db = adapt_date(today)

    cur_rank, cur_rank_p = _map_case("mt.tier_id", rank)
    sup_rank, sup_rank_p = _map_case("e.supported_id", rank)
    lower_of, lower_p = _map_case("mt.tier_id", lower)
    cutoff_of, cutoff_p = _map_case("mt.tier_id", cutoff)
    if settings_row.tier_downgrade_policy == DowngradePolicy.TO_SUPPORTED:
        target, target_p = "e.supported_id", []
    else:
        target, target_p = lower_of, lower_p
    target_rank, target_rank_p = _map_case(f"({target})", rank)
    qualified = "mt.source = 'qualified'"

    with transaction.atomic(), connection.cursor() as cursor:

        def run(sql: str, params: list) -> int:
            cursor.execute(sql, params)
            return max(cursor.rowcount, 0)

        run("DROP TABLE IF EXISTS tier_eval", [])
        run(
            f"CREATE TEMP TABLE tier_eval AS SELECT v.member_id, v.value, "
            f"{supported_sql} AS supported_id, "
            # Moved down already today: a rerun must not take a second step.
            "CASE WHEN EXISTS (SELECT 1 FROM rewards_tierchange tc WHERE "
            "tc.member_id = v.member_id AND tc.reason = 'downgraded' AND tc.created_at >= %s) "
            "THEN 1 ELSE 0 END AS moved_today, "
            # Without a tier yet: decided here, so the inserts below never read the table
            # they fill (on an empty, analysed table the planner would rescan it per row).
            "CASE WHEN EXISTS (SELECT 1 FROM rewards_membertier mt WHERE "
            f"mt.member_id = v.member_id) THEN 0 ELSE 1 END AS is_new FROM ({value_sql}) v",
            supported_params + [day_start_db] + value_params,
        )
        run("CREATE INDEX tier_eval_member ON tier_eval (member_id)", [])
        if connection.vendor == "postgresql":
            run("ANALYZE tier_eval", [])

        # Members with no tier yet get the one they support.
        run(
            "INSERT INTO rewards_tierchange (member_id, from_tier_id, to_tier_id, reason, note, "
            "actor_id, created_at) SELECT e.member_id, NULL, e.supported_id, 'qualified', '', "
            "NULL, %s FROM tier_eval e WHERE e.is_new = 1",
            [now_db],
        )
        enrolled = run(
            "INSERT INTO rewards_membertier (member_id, tier_id, source, since, manual_until, "
            "below_since) SELECT e.member_id, e.supported_id, 'qualified', %s, NULL, NULL "
            "FROM tier_eval e WHERE e.is_new = 1",
            [now_db],
        )

        # Manual tiers whose end date has passed go back to what the value supports.
        manual_over = (
            "mt.source = 'manual' AND mt.manual_until IS NOT NULL AND mt.manual_until < %s"
        )
        run(
            "INSERT INTO rewards_tierchange (member_id, from_tier_id, to_tier_id, reason, note, "
            "actor_id, created_at) SELECT mt.member_id, mt.tier_id, e.supported_id, "
            "'manual_ended', '', NULL, %s FROM rewards_membertier mt JOIN tier_eval e "
            f"ON e.member_id = mt.member_id WHERE {manual_over}",
            [now_db, today_db],
        )
        manual_ended = run(
            "UPDATE rewards_membertier AS mt SET tier_id = e.supported_id, source = 'qualified', "
            "since = %s, manual_until = NULL, below_since = NULL FROM tier_eval AS e "
            f"WHERE e.member_id = mt.member_id AND {manual_over}",
            [now_db, today_db],
        )

        # Upgrades (a purchase usually did this already; the evaluation catches the rest).
        up = f"{qualified} AND {sup_rank} > {cur_rank}"
        up_p = sup_rank_p + cur_rank_p
        run(
            "INSERT INTO rewards_tierchange (member_id, from_tier_id, to_tier_id, reason, note, "
            "actor_id, created_at) SELECT mt.member_id, mt.tier_id, e.supported_id, "
            "'qualified', '', NULL, %s FROM rewards_membertier mt JOIN tier_eval e "
            f"ON e.member_id = mt.member_id WHERE {up}",
            [now_db] + up_p,
        )
        upgraded = run(
            "UPDATE rewards_membertier AS mt SET tier_id = e.supported_id, since = %s, "
            f"below_since = NULL FROM tier_eval AS e WHERE e.member_id = mt.member_id AND {up}",
            [now_db] + up_p,
        )

        # Back at or above the threshold: the grace period stops.
        run(
            "UPDATE rewards_membertier AS mt SET below_since = NULL FROM tier_eval AS e "
            f"WHERE e.member_id = mt.member_id AND {qualified} AND mt.below_since IS NOT NULL "
            f"AND {sup_rank} >= {cur_rank}",
            sup_rank_p + cur_rank_p,
        )
        # Newly below: the grace period starts today.
        entered_grace = run(
            "UPDATE rewards_membertier AS mt SET below_since = %s FROM tier_eval AS e "
            f"WHERE e.member_id = mt.member_id AND {qualified} AND mt.below_since IS NULL "
            f"AND {sup_rank} < {cur_rank}",
            [today_db] + sup_rank_p + cur_rank_p,
        )
        # Grace over: move down by the policy; still below the new tier starts a new grace.
        # At most one step down per member and day, however often the job runs.
        down = (
            f"{qualified} AND mt.below_since IS NOT NULL AND {sup_rank} < {cur_rank} "
            f"AND mt.below_since <= {cutoff_of} AND e.moved_today = 0"
        )
        down_p = sup_rank_p + cur_rank_p + cutoff_p
        run(
            "INSERT INTO rewards_tierchange (member_id, from_tier_id, to_tier_id, reason, note, "
            f"actor_id, created_at) SELECT mt.member_id, mt.tier_id, {target}, 'downgraded', "
            "'', NULL, %s FROM rewards_membertier mt JOIN tier_eval e "
            f"ON e.member_id = mt.member_id WHERE {down}",
            target_p + [now_db] + down_p,
        )
        downgraded = run(
            f"UPDATE rewards_membertier AS mt SET tier_id = {target}, since = %s, "
            f"below_since = CASE WHEN {sup_rank} < {target_rank} THEN %s ELSE NULL END "
            f"FROM tier_eval AS e WHERE e.member_id = mt.member_id AND {down}",
            target_p + [now_db] + sup_rank_p + target_p + target_rank_p + [today_db] + down_p,
        )
        run("DROP TABLE IF EXISTS tier_eval", [])
    return EvaluationResult(
        enrolled=enrolled,
        upgraded=upgraded,
        downgraded=downgraded,
        manual_ended=manual_ended,
        entered_grace=entered_grace,
    )


def tiers_impact_preview(*, proposed: list[TierSpec], now: datetime | None = None) -> TierImpact:
    """Return how many members would move up or down if the tiers were ``proposed``.

    Computed from the same qualifying values as the evaluation: a member counts as "up"
    when the value reaches a higher tier than their current one under the proposal, as
    "down" when it no longer supports their current tier (they would move after the
    grace period). Manual tiers are left out, as the evaluation leaves them alone.
    """
    settings_row = programme_settings_get()
    now = now or timezone.now()
    value_sql, value_params = _value_sql(
        basis=settings_row.tier_basis,
        start=qualification_window_start(at=now, settings_row=settings_row),
        end=now,
    )
    supported_sql, supported_params = _supported_case(proposed, "v.value")
    rank = {s.id: s.rank for s in proposed}
    sup_rank, sup_rank_p = _map_case(f"({supported_sql})", rank)
    cur_rank, cur_rank_p = _map_case("mt.tier_id", rank)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*), "
            f"COALESCE(SUM(CASE WHEN {sup_rank} > {cur_rank} THEN 1 ELSE 0 END), 0), "
            f"COALESCE(SUM(CASE WHEN {sup_rank} < {cur_rank} THEN 1 ELSE 0 END), 0) "
            f"FROM ({value_sql}) v JOIN rewards_membertier mt ON mt.member_id = v.member_id "
            "WHERE mt.source = 'qualified'",
            supported_params
            + sup_rank_p
            + cur_rank_p
            + supported_params
            + sup_rank_p
            + cur_rank_p
            + value_params,
        )
        members, up, down = cursor.fetchone()
    return TierImpact(members=int(members), up=int(up), down=int(down))


def tier_specs_current() -> list[TierSpec]:
    """Return the tiers as they are now, for building a proposal to preview."""
    return _specs(tiers_ordered())


__all__ = [
    "EvaluationResult",
    "TierImpact",
    "TierSpec",
    "tier_specs_current",
    "tiers_evaluate",
    "tiers_impact_preview",
]
