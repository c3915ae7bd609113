"""The earning engine: how many points a basket earns, and why, step by step.

Pure computation over the rules in force; no writes. The steps are stored on the
ledger row (``PointsEntry.details``) so any accrual can be explained to a member later.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from django.db.models import Q

from members.selectors import programme_settings_get
from rewards.models import EarningRule, Tier

_ROUNDING = {
    EarningRule.Rounding.DOWN: ROUND_FLOOR,
    EarningRule.Rounding.HALF_UP: ROUND_HALF_UP,
    EarningRule.Rounding.UP: ROUND_CEILING,
}
_CENT = Decimal("0.01")


def _plain(number: Decimal) -> str:
    """Return a rate or multiplier as people write it: "10", "1.5", "0.05"."""
    return format(number.normalize(), "f")


@dataclass(frozen=True)
class BasketLine:
    """One line of a basket to earn on: its paid amount and what it is."""

    amount: Decimal
    category_id: int | None = None
    sku: str = ""
    category_name: str = ""


@dataclass
class Explanation:
    """The points a basket earns and the steps that produced them (JSON-ready)."""

    points: int = 0
    steps: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class RuleSet:
    """The earning rules in force on one day, loaded once for many baskets."""

    base_name: str
    rate: Decimal
    rounding: str
    min_purchase: Decimal
    category_multipliers: dict[int, tuple[str, Decimal]]
    sku_multipliers: dict[str, tuple[str, Decimal]]
    excluded_categories: dict[int, str]


# Higher apps (campaigns) add multipliers for some members and periods; ``rewards`` may not
# import them, so they register a lookup here when their app is ready.
BonusMultiplierLookup = Callable[[Sequence[int], datetime], dict[int, tuple[Decimal, str]]]
_bonus_multiplier_lookups: list[BonusMultiplierLookup] = []


def bonus_multiplier_lookup_register(lookup: BonusMultiplierLookup) -> None:
    """Register ``lookup(member_ids, at) -> {member_id: (multiplier, name)}``.

    Called from a higher app's ``AppConfig.ready``; registering the same lookup twice is
    harmless. A lookup must run a fixed number of queries however many members it gets.
    """
    if lookup not in _bonus_multiplier_lookups:
        _bonus_multiplier_lookups.append(lookup)


def bonus_multipliers_get(
    *, member_ids: Sequence[int], at: datetime
) -> dict[int, tuple[Decimal, str]]:
    """Return the extra multiplier (and its campaign's name) each member earns at ``at``.

    Members without one are left out. Where several lookups answer for a member the
    highest multiplier wins (campaign multipliers do not stack).
    """
    found: dict[int, tuple[Decimal, str]] = {}
    for lookup in _bonus_multiplier_lookups:
        for member_id, (multiplier, name) in lookup(member_ids, at).items():
            if member_id not in found or multiplier > found[member_id][0]:
                found[member_id] = (multiplier, name)
    return found


def bonus_multipliers_get_many(
    *, moments: Sequence[tuple[int, datetime]]
) -> dict[tuple[int, datetime], tuple[Decimal, str]]:
    """Return :func:`bonus_multipliers_get`'s answer for many (member, moment) pairs.

    For a batch of receipts, each with its own time: a lookup that offers
    ``periods(member_ids)`` (``{member_id: [(starts_at, ends_at, multiplier, name)]}``,
    ``ends_at`` None for open-ended, in force while ``starts_at <= at < ends_at``) costs
    one call for all the moments; any other lookup is asked once per distinct moment.
    Pairs without a multiplier are left out; the highest multiplier wins, as there.
    """
    moments = list(moments)
    found: dict[tuple[int, datetime], tuple[Decimal, str]] = {}

    def offer(key, multiplier, name):
        if key not in found or multiplier > found[key][0]:
            found[key] = (multiplier, name)

    for lookup in _bonus_multiplier_lookups:
        periods = getattr(lookup, "periods", None)
        if periods is not None:
            spans = periods(sorted({member_id for member_id, _at in moments}))
            for member_id, at in moments:
                for starts_at, ends_at, multiplier, name in spans.get(member_id, ()):
                    if starts_at is not None and starts_at <= at and (
                        ends_at is None or at < ends_at
                    ):
                        offer((member_id, at), multiplier, name)
            continue
        by_time: dict[datetime, set[int]] = {}
        for member_id, at in moments:
            by_time.setdefault(at, set()).add(member_id)
        for at, member_ids in by_time.items():
            for member_id, (multiplier, name) in lookup(sorted(member_ids), at).items():
                offer((member_id, at), multiplier, name)
    return found


def earning_rules_load(*, on: date) -> RuleSet:
    """Return the active earning rules valid on ``on``.

    Without an active base-rate rule the programme settings' rate applies, rounded down.
    Where several rules of one kind match, the newest wins.
    """
    rules = (
        EarningRule.objects.filter(is_active=True)
        .filter(Q(valid_from__isnull=True) | Q(valid_from__lte=on))
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gte=on))
        .order_by("id")
    )
    base = None
    categories: dict[int, tuple[str, Decimal]] = {}
    skus: dict[str, tuple[str, Decimal]] = {}
    excluded: dict[int, str] = {}
    for rule in rules:
        if rule.kind == EarningRule.Kind.BASE:
            base = rule
        elif rule.kind == EarningRule.Kind.CATEGORY:
            categories[rule.category_id] = (rule.name, rule.multiplier)
        elif rule.kind == EarningRule.Kind.SKU:
            skus[rule.sku] = (rule.name, rule.multiplier)
        elif rule.kind == EarningRule.Kind.EXCLUDE:
            excluded[rule.category_id] = rule.name
    if base is None:
        return RuleSet(
            base_name="",
            rate=programme_settings_get().earn_rate,
            rounding=EarningRule.Rounding.DOWN,
            min_purchase=Decimal(0),
            category_multipliers=categories,
            sku_multipliers=skus,
            excluded_categories=excluded,
        )
    return RuleSet(
        base_name=base.name,
        rate=base.points_per_unit,
        rounding=base.rounding,
        min_purchase=base.min_purchase,
        category_multipliers=categories,
        sku_multipliers=skus,
        excluded_categories=excluded,
    )


def basket_points_explain(
    *,
    rules: RuleSet,
    total: Decimal,
    lines: list[BasketLine] | tuple = (),
    tier: Tier | None = None,
    extra_multiplier: Decimal = Decimal(1),
    extra_multiplier_name: str = "",
) -> Explanation:
    """Return the points a basket paid ``total`` earns under ``rules``, and why.

    Lines share the paid total in proportion to their amounts (so a receipt discount
    lowers every line). Each line earns total × rate × tier multiplier × its SKU
    multiplier, else its category multiplier; excluded categories earn nothing; the
    receipt's sum is rounded once, as the base rule says. Never negative.
    """
    total = Decimal(total)
    explanation = Explanation()
    if total <= 0:
        return explanation
    if total < rules.min_purchase:
        explanation.steps.append(
            {
                "step": "min_purchase",
                "amount": str(total),
                "minimum": str(rules.min_purchase),
            }
        )
        return explanation
    if not lines:
        lines = [BasketLine(amount=total)]
    lines_sum = sum((Decimal(line.amount) for line in lines), Decimal(0))
    scale = total / lines_sum if lines_sum > 0 else Decimal(0)
    tier_multiplier = tier.earn_multiplier if tier is not None else Decimal(1)

    eligible = Decimal(0)
    extras: list[tuple[str, str, Decimal, Decimal]] = []
    for line in lines:
        paid = Decimal(line.amount) * scale
        if line.category_id in rules.excluded_categories:
            explanation.steps.append(
                {
                    "step": "excluded",
                    "rule": rules.excluded_categories[line.category_id],
                    "category": line.category_name,
                    "amount": str(paid.quantize(_CENT)),
                }
            )
            continue
        eligible += paid
        if line.sku and line.sku in rules.sku_multipliers:
            name, multiplier = rules.sku_multipliers[line.sku]
            extras.append((name, line.sku, paid, multiplier))
        elif line.category_id in rules.category_multipliers:
            name, multiplier = rules.category_multipliers[line.category_id]
            extras.append((name, line.category_name, paid, multiplier))

    base_points = eligible * rules.rate
    explanation.steps.append(
        {
            "step": "base",
            "rule": rules.base_name,
            "amount": str(eligible.quantize(_CENT)),
            "rate": _plain(rules.rate),
            "points": str(base_points.quantize(_CENT)),
        }
    )
    raw = base_points * tier_multiplier
    if tier is not None and tier_multiplier != 1:
        explanation.steps.append(
            {
                "step": "tier",
                "tier": tier.name,
                "multiplier": _plain(tier_multiplier),
                "points": str(raw.quantize(_CENT)),
            }
        )
    for name, subject, paid, multiplier in extras:
        extra = paid * rules.rate * tier_multiplier * (multiplier - 1)
        raw += extra
        explanation.steps.append(
            {
                "step": "multiplier",
                "rule": name,
                "subject": subject,
                "amount": str(paid.quantize(_CENT)),
                "multiplier": _plain(multiplier),
                "points": str(extra.quantize(_CENT)),
            }
        )
    if extra_multiplier != 1:
        extra = raw * (extra_multiplier - 1)
        raw += extra
        explanation.steps.append(
            {
                "step": "campaign",
                "rule": extra_multiplier_name,
                "multiplier": _plain(extra_multiplier),
                "points": str(extra.quantize(_CENT)),
            }
        )
    # Spreading the total over lines divides; drop the noise before rounding once.
    raw = raw.quantize(Decimal("1E-12"))
    points = int(raw.to_integral_value(rounding=_ROUNDING[rules.rounding]))
    explanation.points = max(0, points)
    explanation.steps.append(
        {
            "step": "rounding",
            "mode": rules.rounding,
            "raw": str(raw.quantize(_CENT)),
            "points": explanation.points,
        }
    )
    return explanation
