"""The earning engine: points for a basket, and why, on worked examples.

Every number below is computed by hand in the comments; the engine must agree with
the arithmetic a member could do on the back of the receipt.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from members.models import PointsEntry
from members.selectors import member_points_summary
from members.tests.factories import MemberFactory, ProductCategoryFactory
from rewards.engine import BasketLine, RuleSet, basket_points_explain, earning_rules_load
from rewards.models import EarningRule, Tier
from rewards.tests.factories import (
    CategoryMultiplierFactory,
    EarningRuleFactory,
    ExclusionFactory,
    MemberTierFactory,
    SkuMultiplierFactory,
    at,
    balance,
    buy,
    ledger_sum,
    programme,
    standard_tiers,
)

GROCERIES, COFFEE, TOBACCO, GIFT_CARDS = 1, 2, 3, 4


def rules(
    *,
    rate="0.05",
    rounding=EarningRule.Rounding.DOWN,
    min_purchase="0",
    categories=None,
    skus=None,
    excluded=None,
) -> RuleSet:
    """A rule set built by hand: no database, the engine is pure arithmetic."""
    return RuleSet(
        base_name="Base 5%",
        rate=Decimal(rate),
        rounding=rounding,
        min_purchase=Decimal(min_purchase),
        category_multipliers=categories or {},
        sku_multipliers=skus or {},
        excluded_categories=excluded or {},
    )


def points(ruleset: RuleSet, total, lines=(), tier: Tier | None = None) -> int:
    return basket_points_explain(
        rules=ruleset, total=Decimal(total), lines=list(lines), tier=tier
    ).points


def line(amount, category_id=None, sku="") -> BasketLine:
    return BasketLine(amount=Decimal(amount), category_id=category_id, sku=sku)


# ------------------------------------------------------------------ the worked example


@pytest.mark.django_db
def test_gold_member_basket_earns_tier_category_and_sku_points_minus_excluded_lines():
    """The whole programme on one receipt, through purchase_record, steps stored.

    Rules: base 0.05 points per RUB rounded down; Gold earns ×1.5; Coffee ×2; the SKU
    BEAN-1 (a coffee) ×3, which wins over its category; Tobacco earns nothing.
    Receipt: lines add up to 2,000.00 but a 200.00 receipt discount was given, so the
    member paid 1,800.00 and each line counts 1,800 / 2,000 = 0.9 of its price:

        groceries 1,000.00 → paid   900.00
        coffee      400.00 → paid   360.00   (×2)
        BEAN-1      300.00 → paid   270.00   (×3, not ×2 and not ×6)
        tobacco     300.00 → paid   270.00   excluded
    eligible        = 900 + 360 + 270          = 1,530.00
    base            = 1,530.00 × 0.05          =    76.50
    Gold ×1.5       = 76.50 × 1.5              =   114.75
    coffee extra    = 360 × 0.05 × 1.5 × (2−1) =    27.00
    BEAN-1 extra    = 270 × 0.05 × 1.5 × (3−1) =    40.50
    raw             = 114.75 + 27.00 + 40.50   =   182.25 → rounded down 182
    """
    _bronze, _silver, gold = standard_tiers()
    groceries = ProductCategoryFactory(code="groceries", name="Groceries")
    coffee = ProductCategoryFactory(code="coffee", name="Coffee")
    tobacco = ProductCategoryFactory(code="tobacco", name="Tobacco")
    EarningRuleFactory(name="Base 5%")
    CategoryMultiplierFactory(name="Coffee x2", category=coffee, multiplier=Decimal("2"))
    SkuMultiplierFactory(name="Beans x3", sku="BEAN-1", multiplier=Decimal("3"))
    ExclusionFactory(name="No points on tobacco", category=tobacco)
    member = MemberTierFactory(tier=gold).member

    recording = buy(
        member, "1800.00", discount=Decimal("200.00"),
        lines=[("1000.00", groceries, "MILK-1"), ("400.00", coffee, "LATTE-1"),
               ("300.00", coffee, "BEAN-1"), ("300.00", tobacco, "CIG-1")],
    )

    assert recording.accrual.amount == 182
    stored = PointsEntry.objects.get(pk=recording.accrual.pk)
    assert stored.kind == PointsEntry.Kind.ACCRUAL
    assert stored.purchase_id == recording.purchase.pk
    assert stored.details == [
        {"step": "excluded", "rule": "No points on tobacco", "category": "Tobacco",
         "amount": "270.00"},
        {"step": "base", "rule": "Base 5%", "amount": "1530.00", "rate": "0.05",
         "points": "76.50"},
        {"step": "tier", "tier": "Gold", "multiplier": "1.5", "points": "114.75"},
        {"step": "multiplier", "rule": "Coffee x2", "subject": "Coffee", "amount": "360.00",
         "multiplier": "2", "points": "27.00"},
        {"step": "multiplier", "rule": "Beans x3", "subject": "BEAN-1", "amount": "270.00",
         "multiplier": "3", "points": "40.50"},
        {"step": "rounding", "mode": "down", "raw": "182.25", "points": 182},
    ]
    assert balance(member) == 182 == ledger_sum(member)


def test_sku_multiplier_takes_precedence_over_its_category():
    # One 1,000 RUB bag of BEAN-1, a coffee: base 1,000 × 0.05 = 50;
    # SKU ×3 adds 50 × (3−1) = 100 → 150. Category ×2 alone would give 100; both, 300.
    ruleset = rules(categories={COFFEE: ("Coffee x2", Decimal("2"))},
                    skus={"BEAN-1": ("Beans x3", Decimal("3"))})
    assert points(ruleset, "1000", [line("1000", COFFEE, "BEAN-1")]) == 150
    # Another coffee without the SKU rule keeps the category's ×2: 50 + 50 = 100.
    assert points(ruleset, "1000", [line("1000", COFFEE, "LATTE-1")]) == 100


def test_excluded_category_earns_nothing_and_its_share_of_the_discount_goes_with_it():
    # Lines 600 (groceries) + 400 (tobacco, excluded) = 1,000; paid 900 (10% off).
    # Groceries count 600 × 0.9 = 540 → 540 × 0.05 = 27 points; tobacco's 360 earns 0.
    ruleset = rules(excluded={TOBACCO: "No tobacco"})
    explanation = basket_points_explain(
        rules=ruleset, total=Decimal("900"),
        lines=[line("600", GROCERIES), line("400", TOBACCO)],
    )
    assert explanation.points == 27
    assert explanation.steps[0] == {"step": "excluded", "rule": "No tobacco", "category": "",
                                    "amount": "360.00"}
    # A receipt of tobacco only earns nothing at all.
    assert points(ruleset, "400", [line("400", TOBACCO)]) == 0


def test_receipt_discount_spread_over_three_lines_loses_no_point():
    # Lines 300 + 900 + 500 = 1,700; a 100 RUB receipt discount → paid 1,600.
    # Shares: 300 × 16/17 = 282.35…, 900 × 16/17 = 847.05…, 500 × 16/17 = 470.58…;
    # together exactly 1,600, so 1,600 × 0.05 = 80 points, not 79.
    lines = [line("300", GROCERIES), line("900", GROCERIES), line("500", GROCERIES)]
    assert points(rules(), "1600", lines) == 80
    # Rounded up, the same exact 80 stays 80 (and 1,300 of 1,400 stays 65, not 66).
    assert points(rules(rounding=EarningRule.Rounding.UP), "1600", lines) == 80
    up_lines = [line("300", GROCERIES), line("800", GROCERIES), line("300", GROCERIES)]
    assert points(rules(rounding=EarningRule.Rounding.UP), "1300", up_lines) == 65


@pytest.mark.parametrize(
    ("total", "down", "half_up", "up"),
    [
        ("1000.00", 50, 50, 50),  # 1,000.00 × 0.05 = 50.00
        ("1001.00", 50, 50, 51),  # 1,001.00 × 0.05 = 50.05
        ("1010.00", 50, 51, 51),  # 1,010.00 × 0.05 = 50.50
        ("1019.80", 50, 51, 51),  # 1,019.80 × 0.05 = 50.99
        ("19.99", 0, 1, 1),  # 19.99 × 0.05 = 0.9995
    ],
)
def test_each_rounding_mode_rounds_the_receipt_total_once(total, down, half_up, up):
    for mode, expected in ((EarningRule.Rounding.DOWN, down),
                           (EarningRule.Rounding.HALF_UP, half_up),
                           (EarningRule.Rounding.UP, up)):
        explanation = basket_points_explain(rules=rules(rounding=mode), total=Decimal(total))
        assert explanation.points == expected, mode
        assert explanation.steps[-1]["mode"] == mode


def test_rounding_applies_to_the_receipt_sum_not_to_each_line():
    # Ten lines of 19.99 = 199.90 → 9.995 points → down 9, half up 10.
    # Rounding each line's 0.9995 down first would give 0.
    lines = [line("19.99") for _ in range(10)]
    assert points(rules(), "199.90", lines) == 9
    assert points(rules(rounding=EarningRule.Rounding.HALF_UP), "199.90", lines) == 10


def test_purchase_below_the_minimum_earns_nothing_and_says_why():
    ruleset = rules(min_purchase="500")
    below = basket_points_explain(rules=ruleset, total=Decimal("499.99"))
    assert below.points == 0
    assert below.steps == [{"step": "min_purchase", "amount": "499.99", "minimum": "500"}]
    # At the minimum the whole amount earns: 500 × 0.05 = 25.
    assert points(ruleset, "500.00") == 25


def test_more_money_never_earns_fewer_points_at_fixed_rules():
    ruleset = rules(min_purchase="500")
    totals = ["0", "0.01", "499.99", "500.00", "999.99", "1000.00", "1000.01", "1019.99",
              "1020.00"]
    # 0, 0, 0 (below 500), 25, 49.9995→49, 50, 50.0005→50, 50.9995→50, 51
    assert [points(ruleset, total) for total in totals] == [0, 0, 0, 25, 49, 50, 50, 50, 51]


def test_points_are_never_negative():
    ruleset = rules(categories={GIFT_CARDS: ("Gift cards earn nothing", Decimal("0"))})
    # A ×0 category cancels its base points exactly: 1,000 × 0.05 × (1 + (0−1)) = 0.
    assert points(ruleset, "1000", [line("1000", GIFT_CARDS)]) == 0
    assert points(ruleset, "0") == 0
    assert points(ruleset, "-250") == 0


def test_tier_multiplier_applies_to_base_and_category_points():
    # Silver ×1.25, coffee ×2, 800 RUB of coffee: 800 × 0.05 = 40 → ×1.25 = 50
    # → coffee extra 800 × 0.05 × 1.25 × 1 = 50 → 100.
    silver = Tier(name="Silver", rank=1, earn_multiplier=Decimal("1.25"))
    ruleset = rules(categories={COFFEE: ("Coffee x2", Decimal("2"))})
    assert points(ruleset, "800", [line("800", COFFEE)], tier=silver) == 100
    assert points(ruleset, "800", [line("800", COFFEE)]) == 80


def test_a_whole_number_multiplier_is_explained_plainly():
    # "×10 on BEAN-1" must read 10 on the member page, not 1E+1.
    ruleset = rules(skus={"BEAN-1": ("Beans x10", Decimal("10.00"))})
    explanation = basket_points_explain(
        rules=ruleset, total=Decimal("100"), lines=[line("100", None, "BEAN-1")]
    )
    # 100 × 0.05 = 5, plus 5 × (10−1) = 45 → 50.
    assert explanation.points == 50
    step = next(step for step in explanation.steps if step["step"] == "multiplier")
    assert step["multiplier"] == "10"


_LINES = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=500_000),  # cents
        st.sampled_from([None, GROCERIES, COFFEE, TOBACCO, GIFT_CARDS]),
        st.sampled_from(["", "BEAN-1", "MILK-1"]),
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=300, deadline=None, database=None)
@given(
    lines=_LINES,
    cents=st.tuples(st.integers(0, 2_000_000), st.integers(0, 2_000_000)),
    mode=st.sampled_from(list(EarningRule.Rounding.values)),
    tier_multiplier=st.sampled_from(["1", "1.25", "1.5", "2"]),
    min_purchase=st.sampled_from(["0", "500"]),
)
def test_property_more_money_never_earns_fewer_points(
    lines, cents, mode, tier_multiplier, min_purchase
):
    ruleset = rules(
        rounding=mode, min_purchase=min_purchase,
        categories={COFFEE: ("Coffee x2", Decimal("2")),
                    GIFT_CARDS: ("Gift cards x0", Decimal("0"))},
        skus={"BEAN-1": ("Beans x3", Decimal("3"))},
        excluded={TOBACCO: "No tobacco"},
    )
    tier = Tier(name="T", rank=1, earn_multiplier=Decimal(tier_multiplier))
    basket = [line(Decimal(amount) / 100, category, sku) for amount, category, sku in lines]
    low, high = sorted(Decimal(c) / 100 for c in cents)
    low_points = points(ruleset, low, basket, tier)
    high_points = points(ruleset, high, basket, tier)
    assert 0 <= low_points <= high_points


# ------------------------------------------------------------------ rules in force


@pytest.mark.django_db
def test_rules_in_force_are_those_active_and_valid_on_the_purchase_day():
    coffee = ProductCategoryFactory(code="coffee", name="Coffee")
    EarningRuleFactory(name="Base 5%", points_per_unit=Decimal("0.05"))
    EarningRuleFactory(name="Base 10% from March", points_per_unit=Decimal("0.10"),
                       valid_from=at(2025, 3, 1).date())
    EarningRuleFactory(name="Switched off", points_per_unit=Decimal("1"), is_active=False)
    CategoryMultiplierFactory(name="Coffee week", category=coffee, multiplier=Decimal("2"),
                              valid_from=at(2025, 2, 24).date(),
                              valid_until=at(2025, 3, 2).date())

    february = earning_rules_load(on=at(2025, 2, 28).date())
    assert (february.base_name, february.rate) == ("Base 5%", Decimal("0.05"))
    assert coffee.pk in february.category_multipliers
    march = earning_rules_load(on=at(2025, 3, 1).date())
    assert (march.base_name, march.rate) == ("Base 10% from March", Decimal("0.10"))
    after = earning_rules_load(on=at(2025, 3, 3).date())
    assert after.rate == Decimal("0.10") and not after.category_multipliers

    # A receipt dated 28 February is earned by February's rules: 1,000 × 0.05 × 2 = 100.
    member = MemberFactory()
    recording = buy(member, "1000", when=at(2025, 2, 28), lines=[("1000", coffee, "")])
    assert recording.accrual.amount == 100


@pytest.mark.django_db
def test_without_a_base_rule_the_programme_rate_applies_rounded_down():
    programme(earn_rate=Decimal("0.1"))
    member = MemberFactory()
    # 1,999.99 × 0.1 = 199.999 → 199
    assert buy(member, "1999.99").accrual.amount == 199


# ------------------------------------------------------------------ pending accruals


@pytest.mark.django_db
def test_accrual_is_pending_for_the_return_window_and_shown_apart():
    programme(return_window_days=14)
    EarningRuleFactory()
    member = MemberFactory()
    old = buy(member, "2000", when=timezone.now() - timedelta(days=20))  # 100, free 6 days ago
    new = buy(member, "1000")  # 50 points, pending for 14 more days

    assert new.accrual.available_at == new.purchase.purchased_at + timedelta(days=14)
    assert old.accrual.available_at == old.purchase.purchased_at + timedelta(days=14)
    summary = member_points_summary(member=member.__class__.objects.get(pk=member.pk))
    assert (summary.balance, summary.pending, summary.available) == (150, 50, 100)
    assert summary.next_pending_date == new.accrual.available_at


@pytest.mark.django_db
def test_without_a_return_window_points_are_available_at_once():
    programme(return_window_days=0)
    member = MemberFactory()
    recording = buy(member, "1000")
    assert recording.accrual.available_at is None
    summary = member_points_summary(member=member.__class__.objects.get(pk=member.pk))
    assert (summary.balance, summary.pending, summary.available) == (50, 0, 50)
