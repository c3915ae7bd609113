"""The earning rules at random (hypothesis): never negative, never less for more money.

For any rule set (rate, rounding, minimum purchase, category and SKU multipliers,
excluded categories), any tier multiplier and any basket of lines, the points of
:func:`rewards.engine.basket_points_explain` are a whole number of at least zero, and
paying more for the same basket never earns fewer points. Pure arithmetic: no database.
"""

import os
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from rewards.engine import BasketLine, RuleSet, basket_points_explain
from rewards.models import EarningRule, Tier

BOUNDED = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "100")),
    deadline=None, database=None, derandomize=True,
)
CATEGORIES = [1, 2, 3, 4, None]
SKUS = ["", "BEAN-1", "MILK-2", "CAKE-3"]


def decimals(low: str, high: str, places: int) -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=Decimal(low), max_value=Decimal(high), places=places,
                       allow_nan=False, allow_infinity=False)


MONEY = decimals("0", "1000000", 2)
MULTIPLIER = decimals("0", "10", 2)


@st.composite
def rule_sets(draw) -> RuleSet:
    categories = draw(st.dictionaries(st.sampled_from([1, 2, 3, 4]),
                                      MULTIPLIER.map(lambda m: ("cat", m)), max_size=3))
    skus = draw(st.dictionaries(st.sampled_from(SKUS[1:]),
                                MULTIPLIER.map(lambda m: ("sku", m)), max_size=2))
    excluded = draw(st.dictionaries(st.sampled_from([1, 2, 3, 4]), st.just("excluded"),
                                    max_size=2))
    return RuleSet(
        base_name="Base",
        rate=draw(decimals("0", "5", 4)),
        rounding=draw(st.sampled_from(EarningRule.Rounding.values)),
        min_purchase=draw(decimals("0", "2000", 2)),
        category_multipliers=categories,
        sku_multipliers=skus,
        excluded_categories=excluded,
    )


LINES = st.lists(
    st.builds(BasketLine, amount=MONEY, category_id=st.sampled_from(CATEGORIES),
              sku=st.sampled_from(SKUS)),
    max_size=5,
)
TIERS = st.one_of(st.none(), MULTIPLIER.map(
    lambda multiplier: Tier(name="Tier", rank=1, threshold=0, earn_multiplier=multiplier)
))


@BOUNDED
@given(rules=rule_sets(), lines=LINES, tier=TIERS, total=MONEY)
def test_points_are_a_whole_number_never_negative(rules, lines, tier, total):
    explanation = basket_points_explain(rules=rules, total=total, lines=lines, tier=tier)
    assert isinstance(explanation.points, int)
    assert explanation.points >= 0


@BOUNDED
@given(rules=rule_sets(), lines=LINES, tier=TIERS, total=MONEY, more=MONEY)
def test_paying_more_for_the_same_basket_never_earns_fewer_points(
    rules, lines, tier, total, more
):
    less = basket_points_explain(rules=rules, total=total, lines=lines, tier=tier).points
    most = basket_points_explain(rules=rules, total=total + more, lines=lines, tier=tier).points
    assert most >= less, (total, total + more, less, most)


@BOUNDED
@given(rules=rule_sets(), total=MONEY, more=MONEY)
def test_a_higher_tier_multiplier_never_earns_fewer_points(rules, total, more):
    low = Tier(name="Low", rank=1, threshold=0, earn_multiplier=Decimal("1.00"))
    high = Tier(name="High", rank=2, threshold=0, earn_multiplier=Decimal("1.50"))
    assert (basket_points_explain(rules=rules, total=total, tier=high).points
            >= basket_points_explain(rules=rules, total=total, tier=low).points)
