"""Two-proportion statistics for conversion: lift, 95% confidence interval, p-value.

Pure functions of counts (no database), written out so a reader can check them by hand:

* rates ``p1 = c1 / n1`` (variant) and ``p2 = c2 / n2`` (control); lift ``d = p1 - p2``;
* 95% interval for ``d``: ``d ± 1.959964 * sqrt(p1(1-p1)/n1 + p2(1-p2)/n2)`` (Wald, unpooled);
* z-test with the pooled rate ``p = (c1 + c2) / (n1 + n2)``:
  ``z = d / sqrt(p(1-p)(1/n1 + 1/n2))``, two-sided ``p-value = erfc(|z| / sqrt(2))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z_95 = 1.959963984540054
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class ProportionTest:
    """A variant's conversion against the control's."""

    rate: float
    control_rate: float
    lift: float  # absolute difference of the rates
    relative_lift: float | None  # lift / control rate; None when the control rate is 0
    ci_low: float
    ci_high: float
    z: float | None
    p_value: float | None  # None when it cannot be computed (no one converted anywhere)

    @property
    def lift_points(self) -> float:
        """The lift in percentage points (0.03 -> 3.0)."""
        return self.lift * 100

    @property
    def ci_low_points(self) -> float:
        return self.ci_low * 100

    @property
    def ci_high_points(self) -> float:
        return self.ci_high * 100

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < SIGNIFICANCE


def two_proportion_test(*, converted: int, total: int, control_converted: int,
                        control_total: int) -> ProportionTest | None:
    """Return the test of ``converted/total`` against ``control_converted/control_total``.

    None when either group is empty.
    """
    if total <= 0 or control_total <= 0:
        return None
    p1 = converted / total
    p2 = control_converted / control_total
    lift = p1 - p2
    spread = math.sqrt(p1 * (1 - p1) / total + p2 * (1 - p2) / control_total)
    pooled = (converted + control_converted) / (total + control_total)
    pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / total + 1 / control_total))
    if pooled_se == 0:
        z = None
        p_value = None
    else:
        z = lift / pooled_se
        p_value = math.erfc(abs(z) / math.sqrt(2))
    return ProportionTest(
        rate=p1,
        control_rate=p2,
        lift=lift,
        relative_lift=(lift / p2) if p2 else None,
        ci_low=lift - Z_95 * spread,
        ci_high=lift + Z_95 * spread,
        z=z,
        p_value=p_value,
    )
