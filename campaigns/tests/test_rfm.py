"""RFM scores and segments on a worked example written out here."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.models import MemberRfm, RfmSegment
from campaigns.rfm import RFM_RULES, rfm_compute, rfm_segment_for
from members.services import PurchaseLineData
from members.tests.factories import MemberFactory, ProductCategoryFactory

pytestmark = pytest.mark.django_db


def test_rules_cover_every_cell_of_the_grid_once_in_order():
    cells = {(r, f): rfm_segment_for(r, f) for r in range(1, 6) for f in range(1, 6)}
    assert cells[(5, 5)] == RfmSegment.CHAMPIONS
    assert cells[(5, 1)] == RfmSegment.NEW
    assert cells[(4, 1)] == RfmSegment.PROMISING
    assert cells[(3, 4)] == RfmSegment.LOYAL
    assert cells[(1, 5)] == RfmSegment.CANNOT_LOSE
    assert cells[(2, 3)] == RfmSegment.AT_RISK
    assert cells[(1, 1)] == RfmSegment.LOST
    assert cells[(2, 2)] == RfmSegment.HIBERNATING
    # Every cell is matched by some rule, not by the fallback.
    for (r, f) in cells:
        assert any(rule.recency[0] <= r <= rule.recency[1]
                   and rule.frequency[0] <= f <= rule.frequency[1] for rule in RFM_RULES)


def test_worked_example_five_members_get_quintile_scores_and_segments(buy):
    """Five members with distinct values: with five members each rank is its own fifth.

    member  last purchase  purchases  spent   R F M  segment
    A       1 day ago      5          5000    5 5 5  champions
    B       10 days        1           100    4 1 1  promising
    C       30 days        3           900    3 3 3  need attention
    D       100 days       4          2000    2 4 4  at risk
    E       200 days       2           300    1 2 2  hibernating
    F       400 days       1           999    — (outside the 365-day window: no row)
    """
    now = timezone.now()
    food = ProductCategoryFactory(code="food", name="Food")
    toys = ProductCategoryFactory(code="toys", name="Toys")
    a, b, c, d, e, f = (MemberFactory(first_name=n) for n in "ABCDEF")
    buy(a, 1000, 1, now=now, lines=[PurchaseLineData("s1", Decimal(700), category_id=toys.id),
                                    PurchaseLineData("s2", Decimal(300), category_id=food.id)])
    for _ in range(4):
        buy(a, 1000, 50, now=now)
    buy(b, 100, 10, now=now)
    for total, days in ((300, 30), (300, 60), (300, 90)):
        buy(c, total, days, now=now)
    for _ in range(4):
        buy(d, 500, 100, now=now)
    buy(e, 150, 200, now=now)
    buy(e, 150, 250, now=now, lines=[PurchaseLineData("s3", Decimal(150), category_id=food.id)])
    buy(f, 999, 400, now=now)

    result = rfm_compute(now=now, window_days=365)

    assert result.members_scored == 5
    rows = {row.member_id: row for row in MemberRfm.objects.all()}
    expected = {
        a.id: (5, 5, 5, RfmSegment.CHAMPIONS, 1, 5, Decimal("5000")),
        b.id: (4, 1, 1, RfmSegment.PROMISING, 10, 1, Decimal("100")),
        c.id: (3, 3, 3, RfmSegment.NEED_ATTENTION, 30, 3, Decimal("900")),
        d.id: (2, 4, 4, RfmSegment.AT_RISK, 100, 4, Decimal("2000")),
        e.id: (1, 2, 2, RfmSegment.HIBERNATING, 200, 2, Decimal("300")),
    }
    assert set(rows) == set(expected)
    for member_id, (r, f_, m, segment, days, freq, money) in expected.items():
        row = rows[member_id]
        assert (row.recency_score, row.frequency_score, row.monetary_score) == (r, f_, m)
        assert row.segment == segment
        assert (row.recency_days, row.frequency, row.monetary) == (days, freq, money)
        assert row.computed_on == timezone.localdate(now)
    assert rows[a.id].favourite_category_id == toys.id  # 700 on toys beats 300 on food
    assert rows[e.id].favourite_category_id == food.id
    assert rows[b.id].favourite_category_id is None


def test_equal_values_share_a_score_and_a_rerun_replaces_rows(buy):
    """Ten members: five bought once, five twice. Ranks 1 and 6 of 10 give F 1 and F 3."""
    now = timezone.now()
    once = [MemberFactory() for _ in range(5)]
    twice = [MemberFactory() for _ in range(5)]
    for member in once:
        buy(member, 100, 5, now=now)
    for member in twice:
        buy(member, 100, 5, now=now)
        buy(member, 100, 6, now=now)
    rfm_compute(now=now, window_days=30)
    rfm_compute(now=now, window_days=30)
    scores = dict(MemberRfm.objects.values_list("member_id", "frequency_score"))
    assert len(scores) == 10
    assert {scores[m.id] for m in once} == {1}
    assert {scores[m.id] for m in twice} == {3}  # 1 + 5 * (6 - 1) // 10


def test_favourite_category_sums_window_lines_and_breaks_ties_by_lowest_id(buy):
    """The favourite category is the largest sum of line amounts in the window.

    Guards the part of the scoring SQL that reads purchase lines (its costliest part):

    member  lines in the window (category: amount)        outside / no category    favourite
    M       low 40.25 + low 60.25 = 100.50, mid 100.50   high 1000 (400 days ago)  low (tie)
    N       mid 70 ; high 70                              no category 5000          mid (tie)
    P       high 30.01 + high 30.00 = 60.01 ; mid 60.00   —                         high
    """
    now = timezone.now()
    low, mid, high = (ProductCategoryFactory(code=c, name=c) for c in ("low", "mid", "high"))
    assert low.id < mid.id < high.id
    m, n, p = (MemberFactory(first_name=name) for name in "MNP")
    line = PurchaseLineData
    buy(m, 140, 5, now=now, lines=[line("a", Decimal("100.50"), category_id=mid.id),
                                   line("b", Decimal("40.25"), category_id=low.id)])
    buy(m, 60, 10, now=now, lines=[line("c", Decimal("60.25"), category_id=low.id)])
    buy(m, 1000, 400, now=now, lines=[line("d", Decimal(1000), category_id=high.id)])
    buy(n, 5140, 3, now=now, lines=[line("e", Decimal(70), category_id=high.id),
                                    line("f", Decimal(70), category_id=mid.id),
                                    line("g", Decimal(5000))])
    buy(p, 90, 2, now=now, lines=[line("h", Decimal("30.01"), category_id=high.id),
                                  line("i", Decimal("60.00"), category_id=mid.id)])
    buy(p, 30, 20, now=now, lines=[line("j", Decimal("30.00"), category_id=high.id)])

    rfm_compute(now=now, window_days=365)

    favourites = dict(MemberRfm.objects.values_list("member_id", "favourite_category_id"))
    assert favourites == {m.id: low.id, n.id: mid.id, p.id: high.id}


def test_rerun_updates_rows_drops_members_who_left_the_window_and_matches_a_fresh_run(buy):
    """A rerun upserts: the result equals scoring into an empty table.

    First run (window 365 days): A and B. Then A buys again (more food than toys), C buys
    for the first time, and the second run is 200 days later with a 250-day window: B's
    only purchase is now 300 days old, so B's row goes; A's row changes; C's is new.
    """
    now = timezone.now()
    toys = ProductCategoryFactory(code="toys", name="Toys")
    food = ProductCategoryFactory(code="food", name="Food")
    a, b, c = (MemberFactory(first_name=name) for name in "ABC")
    buy(a, 50, 10, now=now, lines=[PurchaseLineData("t", Decimal(50), category_id=toys.id)])
    buy(b, 80, 100, now=now)
    first = rfm_compute(now=now, window_days=365)
    assert first.members_scored == 2
    assert MemberRfm.objects.get(member_id=a.id).favourite_category_id == toys.id

    buy(a, 90, 0.5, now=now, lines=[PurchaseLineData("f", Decimal(90), category_id=food.id)])
    buy(c, 20, 1, now=now)
    later = now + timedelta(days=200)
    second = rfm_compute(now=later, window_days=250)

    fields = ("member_id", "recency_score", "frequency_score", "monetary_score", "segment",
              "recency_days", "frequency", "monetary", "favourite_category_id", "computed_on")
    upserted = list(MemberRfm.objects.order_by("member_id").values_list(*fields))
    assert second.members_scored == 2
    assert [row[0] for row in upserted] == sorted([a.id, c.id])
    row_a = MemberRfm.objects.get(member_id=a.id)
    assert (row_a.frequency, row_a.monetary, row_a.recency_days) == (2, Decimal(140), 200)
    assert row_a.favourite_category_id == food.id
    assert row_a.computed_on == timezone.localdate(later)

    MemberRfm.objects.all().delete()
    rfm_compute(now=later, window_days=250)
    assert list(MemberRfm.objects.order_by("member_id").values_list(*fields)) == upserted


def test_scoring_raises_work_mem_for_its_statement_only(buy):
    """The scoring statement gets RFM_WORK_MEM_KB; the caller's transaction keeps its own."""
    from django.db import connection

    from campaigns.rfm import RFM_WORK_MEM_KB

    buy(MemberFactory(), 100, 1)
    with connection.cursor() as cursor:
        cursor.execute("SELECT setting FROM pg_settings WHERE name = 'work_mem'")
        before = int(cursor.fetchone()[0])
        assert before < RFM_WORK_MEM_KB  # the test server runs with the default
        rfm_compute(window_days=30)
        cursor.execute("SELECT setting FROM pg_settings WHERE name = 'work_mem'")
        assert int(cursor.fetchone()[0]) == before
    assert MemberRfm.objects.count() == 1
