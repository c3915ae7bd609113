"""Lift, its 95% interval and the two-proportion p-value against hand-computed values."""

import math

import pytest

from campaigns.stats import two_proportion_test


def test_two_proportion_test_matches_hand_computation():
    """Variant 120 of 1000 converted, control 90 of 1000.

    p1 = 0.12, p2 = 0.09, lift = 0.03
    SE (unpooled) = sqrt(.12*.88/1000 + .09*.91/1000) = sqrt(0.0001875) = 0.0136931
    CI = 0.03 ± 1.959964 * 0.0136931 = [0.003162, 0.056838]
    pooled p = 210/2000 = 0.105; SE = sqrt(.105*.895*(2/1000)) = 0.0137095
    z = 0.03 / 0.0137095 = 2.18826; p = erfc(2.18826 / sqrt 2) = 0.028650
    (scipy.stats: 2 * norm.sf(2.18826) = 0.028650)
    """
    test = two_proportion_test(converted=120, total=1000, control_converted=90,
                               control_total=1000)
    assert test.rate == pytest.approx(0.12)
    assert test.control_rate == pytest.approx(0.09)
    assert test.lift == pytest.approx(0.03)
    assert test.relative_lift == pytest.approx(1 / 3)
    assert test.ci_low == pytest.approx(0.003162, abs=1e-6)
    assert test.ci_high == pytest.approx(0.056838, abs=1e-6)
    assert test.z == pytest.approx(2.18826, abs=1e-5)
    assert test.p_value == pytest.approx(0.028650, abs=1e-6)
    assert test.significant


def test_small_difference_is_not_significant():
    """50/1000 against 45/1000: z = 0.005 / sqrt(.0475*.9525*.002) = 0.5256, p = 0.5991."""
    test = two_proportion_test(converted=50, total=1000, control_converted=45,
                               control_total=1000)
    assert test.z == pytest.approx(0.005 / math.sqrt(0.0475 * 0.9525 * 0.002))
    assert test.p_value == pytest.approx(0.59915, abs=1e-5)
    assert not test.significant


def test_no_conversions_anywhere_has_no_p_value_and_empty_groups_no_test():
    test = two_proportion_test(converted=0, total=10, control_converted=0, control_total=10)
    assert test.p_value is None and not test.significant
    assert two_proportion_test(converted=0, total=0, control_converted=1,
                               control_total=10) is None
