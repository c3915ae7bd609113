"""Every KPI of the dashboards on a small worked example, written out here.

The example (see ``dashboard_data.worked_example``): January 2025 against December
2024, six members, eleven receipts, seven ledger rows. Each figure is computed by hand
in the comments next to its assertion.
"""

from datetime import date
from decimal import Decimal

import pytest

from loyalty_admin.dashboards import rollups
from loyalty_admin.dashboards import selectors as figures
from loyalty_admin.dashboards.periods import Period
from loyalty_admin.tests.dashboard_data import worked_example
from members.selectors import programme_settings_get
from rewards.models import MemberTier, Tier

pytestmark = pytest.mark.django_db

JANUARY = Period(date(2025, 1, 1), date(2025, 1, 31))
DECEMBER = Period(date(2024, 12, 1), date(2024, 12, 31))


@pytest.fixture
def example():
    data = worked_example()
    gold = Tier.objects.create(name="Example gold", rank=40)
    for name in ("A", "C"):
        MemberTier.objects.create(member=data[name], tier=gold)
    rollups.rollup_days(first=date(2024, 3, 1), last=date(2025, 1, 31))
    return {**data, "gold": gold}


def scope(**filters):
    return figures.Scope(period=JANUARY, previous=DECEMBER, **filters)


def test_december_is_the_previous_period_of_january():
    # 31 days ending the day before 1 January.
    assert JANUARY.previous() == DECEMBER


def test_sales_members_against_non_members(example):
    sales = figures.sales_summary(scope())
    # Members in January: A 500 + 700, C 400, D 600, H 800 = 5 receipts, 3,000.
    assert sales.member_purchases.now == 5
    assert sales.member_revenue.now == Decimal("3000")
    # Non-members: 200 + 400 = 2 receipts, 600.
    assert (sales.other_purchases.now, sales.other_revenue.now) == (2, Decimal("600"))
    # AOV: 3,000 / 5 = 600 against 600 / 2 = 300.
    assert sales.member_aov.now == Decimal("600")
    assert sales.other_aov.now == Decimal("300")
    # Participation: 5 of 7 receipts; revenue share: 3,000 of 3,600.
    assert sales.participation.now == Decimal("71.4286")
    assert sales.member_revenue_share.now == Decimal("83.3333")
    # December: A 1,000 and B 300, no non-member: AOV 650, share 100 %.
    assert sales.member_aov.before == Decimal("650")
    assert sales.member_revenue_share.before == Decimal("100")


def test_aov_by_tier(example):
    rows = {(r["is_member"], r["tier_id"]): r for r in figures.aov_by_tier(scope())}
    gold = rows[(True, example["gold"].pk)]
    # Gold = A (500 + 700) and C (400): 1,600 / 3.
    assert (gold["purchases"], gold["revenue"], gold["aov"]) == (3, Decimal("1600"),
                                                                 Decimal("533.3333"))
    # No tier = D 600 and H 800: 1,400 / 2.
    assert rows[(True, None)]["aov"] == Decimal("700")
    assert rows[(False, None)]["aov"] == Decimal("300")


def test_retention_with_members_joining_and_leaving(example):
    people = figures.members_summary(scope())
    # S (bought in December) = {A, B}; E (January) = {A, C, D, H}; N = {C} (first ever).
    # B left; D and H lapsed earlier and came back; C joined.
    assert people.previous_buyers.now == 2
    assert people.buyers.now == 4
    assert people.new_buyers.now == 1
    # CRR = ((4 − 1) / 2) × 100 = 150 %: above 100 because D and H came back.
    assert people.crr.now == Decimal("150")
    # Strict: S ∩ E = {A}: 1 / 2.
    assert people.retained.now == 1
    assert people.strict_retention.now == Decimal("50")
    # December's own: S' (November) = {} so no CRR; E' = {A, B}, neither new? A and B
    # bought for the first time in December: N' = 2.
    assert people.crr.before is None
    assert people.new_buyers.before == 2


def test_active_members_frequency_and_repeat_rate(example):
    people = figures.members_summary(scope())
    # Active: the four buyers and I, who only redeemed points = 5.
    assert people.active.now == 5
    # Frequency: 5 member receipts / 5 active members.
    assert people.frequency.now == Decimal("1")
    # Repeat: of the 4 buyers only A bought twice: 25 %.
    assert people.repeat_rate.now == Decimal("25")


def test_members_new_total_and_churn(example):
    people = figures.members_summary(scope(churn_days=90))
    # Everyone but C enrolled before January: 6 members in all, C is the new one.
    assert (people.total.now, people.new.now) == (6, 1)
    assert (people.total.before, people.new.before) == (5, 0)
    # Churn at 31 January, window 90 days: base = enrolled by 2 November 2024 =
    # {A, B, I, D, H}; of them A, B (December), D, H (January) bought since: I churned.
    assert (people.churn_base.now, people.churn_active.now) == (5, 4)
    assert people.churn.now == Decimal("20")


def test_filters_by_store_and_tier(example):
    gold = figures.members_summary(scope(tier_id=example["gold"].pk))
    # Gold buyers in January: A and C; C is new.
    assert (gold.buyers.now, gold.new_buyers.now) == (2, 1)
    elsewhere = figures.sales_summary(scope(store_id=example["store"].pk + 1000))
    assert elsewhere.purchases.now == 0


def test_points_redemption_rate_breakage_and_liability(example):
    settings_row = programme_settings_get()
    points = figures.points_summary(scope(), point_value=Decimal("0.5"))
    # Issued in January: A accrual 100, C welcome 200 and accrual 50 = 350.
    assert points.issued.now == 350
    # Redeemed: I 300; expired: B 40.
    assert (points.redeemed.now, points.expired.now) == (300, 40)
    # Redemption rate 300 / 350; breakage 40 / 350.
    assert points.redemption_rate.now == Decimal("85.7143")
    assert points.breakage.now == Decimal("11.4286")
    # Outstanding at 31 January: 500 − 300 + 60 − 40 + 100 + 200 + 50 = 570 points;
    # at 0.5 a point the liability is 285.00. At 31 December: 500 + 60 = 560 → 280.00.
    assert points.balance.now == 570
    assert points.liability.now == Decimal("285.00")
    assert points.liability.before == Decimal("280.00")
    assert settings_row.point_value == Decimal("1")  # the settings were not touched


def test_cohort_triangle(example):
    months, rows = figures.cohort_triangle(scope(), cohorts=12)
    assert months[0] == date(2024, 2, 1) and months[-1] == date(2025, 1, 1)
    by_cohort = {row["cohort"]: row for row in rows}
    # March 2024 = {D}: bought in month 6 (September) and month 10 (January).
    march = by_cohort[date(2024, 3, 1)]
    assert march["size"] == 1
    assert march["active"] == [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    # June 2024 = {A, B, I}: A and B bought in month 6 (December), A in month 7.
    june = by_cohort[date(2024, 6, 1)]
    assert june["size"] == 3
    assert june["active"] == [0, 0, 0, 0, 0, 0, 2, 1]
    # January 2025 = {C}, who bought in the month of enrolment; the row has one month.
    assert by_cohort[date(2025, 1, 1)] == {"cohort": date(2025, 1, 1), "size": 1,
                                           "active": [1]}
    # April 2024 = {H}: bought in May (month 1) and January (month 9).
    assert by_cohort[date(2024, 4, 1)]["active"] == [0, 1, 0, 0, 0, 0, 0, 0, 0, 1]


def test_cac_per_month_and_window(example):
    from loyalty_admin.dashboards.services import marketing_spend_save

    marketing_spend_save(month=date(2025, 1, 17), amount=Decimal("1000"), channel="Ads")
    marketing_spend_save(month=date(2025, 1, 1), amount=Decimal("500"), channel="Leaflets")
    rows = figures.acquisition_months(first=date(2024, 12, 1), last=date(2025, 1, 31))
    # December: no spend recorded, so no cost; January: 1,500 for C alone.
    assert rows[0] == {"month": date(2024, 12, 1), "spend": None, "new": 0, "cac": None}
    assert rows[1]["spend"] == Decimal("1500") and rows[1]["new"] == 1
    assert rows[1]["cac"] == Decimal("1500")
    assert figures.cac_window(rows)["cac"] == Decimal("1500")
