"""RFM scoring: recency, frequency and money spent, 1-5 each by quintiles, and the segments.

One ``INSERT ... SELECT`` with window functions scores every member at once; the same SQL
runs on PostgreSQL and on SQLite (3.25+ has window functions, 3.24+ upserts), only the day
arithmetic differs.

How a score is computed: members with a purchase in the window are ranked by the measure
(``RANK()``, so equal values share a rank) and the rank is cut into fifths:
``score = 1 + 5 * (rank - 1) / members`` (integer division). Recency ranks the oldest
last purchase first, so the most recent buyers score 5. Members without a purchase in the
window get no row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from campaigns.models import MemberRfm, RfmRun, RfmSegment
from campaigns.selectors import campaign_settings_get


@dataclass(frozen=True)
class RfmRule:
    """A segment is every member whose R and F scores fall in these ranges (first match)."""

    segment: str
    recency: tuple[int, int]
    frequency: tuple[int, int]
    meaning: str


# The classic R x F grid; money spent is scored and shown but does not move a member
# between segments. Read top to bottom: the first rule that matches wins; together they
# cover all 25 cells.
RFM_RULES: tuple[RfmRule, ...] = (
    RfmRule(RfmSegment.CHAMPIONS, (5, 5), (4, 5),
            _("Bought very recently and buy most often.")),
    RfmRule(RfmSegment.LOYAL, (3, 4), (4, 5),
            _("Buy often; bought fairly recently.")),
    RfmRule(RfmSegment.POTENTIAL_LOYALISTS, (4, 5), (2, 3),
            _("Recent buyers who came back a few times.")),
    RfmRule(RfmSegment.NEW, (5, 5), (1, 1),
            _("Bought very recently, for the first time in the window.")),
    RfmRule(RfmSegment.PROMISING, (4, 4), (1, 1),
            _("Bought recently, once.")),
    RfmRule(RfmSegment.NEED_ATTENTION, (3, 3), (1, 3),
            _("Middling recency and frequency: about to slip away.")),
    RfmRule(RfmSegment.CANNOT_LOSE, (1, 2), (5, 5),
            _("Used to buy most often, but not for a long time.")),
    RfmRule(RfmSegment.AT_RISK, (1, 2), (3, 4),
            _("Bought often, but long ago.")),
    RfmRule(RfmSegment.LOST, (1, 1), (1, 1),
            _("Bought once, long ago.")),
    RfmRule(RfmSegment.HIBERNATING, (1, 2), (1, 2),
            _("Bought rarely and not recently.")),
)


def rfm_segment_for(recency: int, frequency: int) -> str:
    """Return the segment of an R and F score pair (the same rules as the SQL)."""
    for rule in RFM_RULES:
        if rule.recency[0] <= recency <= rule.recency[1] and \
                rule.frequency[0] <= frequency <= rule.frequency[1]:
            return rule.segment
    return RfmSegment.HIBERNATING


def _segment_case() -> str:
    """Return the SQL CASE that maps r_score, f_score to a segment (literals are ours)."""
    whens = " ".join(
        f"WHEN r_score BETWEEN {rule.recency[0]} AND {rule.recency[1]} "
        f"AND f_score BETWEEN {rule.frequency[0]} AND {rule.frequency[1]} "
        f"THEN '{rule.segment.value}'"
        for rule in RFM_RULES
    )
    return f"CASE {whens} ELSE '{RfmSegment.HIBERNATING.value}' END"


def _days_since(vendor: str) -> str:
    """Return SQL for whole days from ``last_at`` to the parameter ``%s``."""
    if vendor == "postgresql":
        return "CAST(FLOOR(EXTRACT(EPOCH FROM (%s - last_at)) / 86400) AS integer)"
    return "CAST(julianday(%s) - julianday(last_at) AS integer)"


def _score(order: str) -> str:
    return f"1 + (5 * (RANK() OVER (ORDER BY {order}) - 1)) / COUNT(*) OVER ()"


# Every column but the key: all of them are overwritten when the member already has a row.
_UPDATED_COLUMNS = ("recency_score", "frequency_score", "monetary_score", "segment",
                    "recency_days", "frequency", "monetary", "favourite_category_id",
                    "computed_on")


def _statement(vendor: str) -> str:
    """Return the scoring upsert; every literal in it is ours, values are parameters."""
    rfm = MemberRfm._meta.db_table
    updates = ", ".join(f"{column} = excluded.{column}" for column in _UPDATED_COLUMNS)
    # "WHERE 1 = 1": SQLite would otherwise read the ON of ON CONFLICT as a join condition.
    return f"""
INSERT INTO {rfm} (member_id, recency_score, frequency_score, monetary_score, segment,
                   recency_days, frequency, monetary, favourite_category_id, computed_on)
WITH totals AS (
    SELECT member_id, MAX(purchased_at) AS last_at, COUNT(*) AS freq,
           SUM(total - refunded_total) AS money
    FROM members_purchase
    WHERE member_id IS NOT NULL AND purchased_at >= %s AND purchased_at <= %s
    GROUP BY member_id
),
aged AS (
    SELECT member_id, freq, money, {_days_since(vendor)} AS days FROM totals
),
scored AS (
    SELECT member_id, freq, money, days,
           {_score("days DESC")} AS r_score,
           {_score("freq")} AS f_score,
           {_score("money")} AS m_score
    FROM aged
),
category_spend AS (
    SELECT p.member_id, l.category_id,
           ROW_NUMBER() OVER (PARTITION BY p.member_id
                              ORDER BY SUM(l.amount) DESC, l.category_id) AS place
    FROM members_purchaseline l JOIN members_purchase p ON p.id = l.purchase_id
    WHERE p.member_id IS NOT NULL AND p.purchased_at >= %s AND p.purchased_at <= %s
          AND l.category_id IS NOT NULL
    GROUP BY p.member_id, l.category_id
)
SELECT s.member_id, s.r_score, s.f_score, s.m_score, {_segment_case()},
       CASE WHEN s.days < 0 THEN 0 ELSE s.days END, s.freq, s.money, c.category_id, %s
FROM scored s LEFT JOIN category_spend c ON c.member_id = s.member_id AND c.place = 1
WHERE 1 = 1
ON CONFLICT (member_id) DO UPDATE SET {updates}
"""  # noqa: S608


def _stale_delete() -> str:
    """Return the DELETE of rows of members without a purchase in the window.

    The same condition as ``totals`` in :func:`_statement`: after it and the upsert, the
    table holds exactly the members scored now.
    """
    rfm = MemberRfm._meta.db_table
    return f"""
DELETE FROM {rfm} WHERE NOT EXISTS (
    SELECT 1 FROM members_purchase p
    WHERE p.member_id = {rfm}.member_id AND p.purchased_at >= %s AND p.purchased_at <= %s
)
"""  # noqa: S608


# Memory for the scoring statement's hashes and sorts on PostgreSQL, in kB. Grouping ~17 M
# purchase lines of 1 M members by member and category spilled about 2.5 GB to temporary
# files at work_mem 64 MB; at 512 MB about 0.4 GB, and the run took 18% less CPU and time
# (measured 4 December 2026). Each hash or sort of the plan may use this much (hashes
# twice, hash_mem_multiplier), once a night. A server set higher than this is left as it is.
RFM_WORK_MEM_KB = 512 * 1024


def _work_mem_raise(cursor) -> str | None:
    """Raise work_mem for the current transaction; return the value to restore, or None."""
    cursor.execute("SELECT setting FROM pg_settings WHERE name = 'work_mem'")  # in kB
    current = int(cursor.fetchone()[0])
    if current >= RFM_WORK_MEM_KB:
        return None
    cursor.execute("SELECT set_config('work_mem', %s, true)", [f"{RFM_WORK_MEM_KB}kB"])
    return f"{current}kB"


@dataclass(frozen=True)
class RfmResult:
    members_scored: int
    seconds: Decimal
    computed_on: object


def rfm_compute(*, now: datetime | None = None, window_days: int | None = None) -> RfmResult:
    """Score every member with a purchase in the window and replace all RFM rows.

    Set-based, in one transaction, so readers see either yesterday's scores or today's,
    never a half-written table: one DELETE of the members who have left the window, then
    one INSERT ... SELECT that updates the rows of members already scored. Safe to run twice.
    """
    now = now or timezone.now()
    window_days = window_days or campaign_settings_get().rfm_window_days
    start = now - timedelta(days=window_days)
    today = timezone.localdate(now)
    ops = connection.ops
    start_db = ops.adapt_datetimefield_value(start)
    now_db = ops.adapt_datetimefield_value(now)
    started = time.monotonic()
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Updating yesterday's rows rather than deleting and re-inserting them all: an
            # update that keeps member_id skips the deferred foreign-key check on members,
            # which at 1M members cost 9-18 s at commit (a FOR KEY SHARE lock per member).
            cursor.execute(_stale_delete(), [start_db, now_db])
            restore = _work_mem_raise(cursor) if connection.vendor == "postgresql" else None
            cursor.execute(
                _statement(connection.vendor),
                [start_db, now_db, now_db, start_db, now_db,
                 ops.adapt_datefield_value(today)],
            )
            scored = cursor.rowcount
            if restore:
                # Only for this statement: a caller's transaction goes on with its own.
                cursor.execute("SELECT set_config('work_mem', %s, true)", [restore])
        seconds = Decimal(str(round(time.monotonic() - started, 2)))
        RfmRun.objects.create(
            computed_on=today, window_days=window_days, members_scored=max(scored, 0),
            seconds=seconds,
        )
    return RfmResult(members_scored=max(scored, 0), seconds=seconds, computed_on=today)
