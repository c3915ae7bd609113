"""Template filters for showing points the way staff read them."""

from decimal import Decimal, InvalidOperation

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma
from django.utils.formats import number_format
from django.utils.translation import gettext, gettext_lazy

register = template.Library()


@register.filter
def points_signed(value) -> str:
    """Return points with an explicit sign and digit grouping, e.g. "+5,000" or "−120"."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return ""
    grouped = intcomma(abs(number))
    return f"+{grouped}" if number > 0 else f"−{grouped}" if number < 0 else "0"


def _number(value, decimal_pos: int | None = 2) -> str:
    """Return a number from a ledger step in the active locale, e.g. "12,000.00" or "1.5"."""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        return str(value)
    if decimal_pos is None:
        number = number.normalize()
        decimal_pos = max(0, -number.as_tuple().exponent)
    return number_format(number, decimal_pos=decimal_pos, use_l10n=True, force_grouping=True)


def _signed(value) -> str:
    text = _number(value)
    try:
        negative = Decimal(str(value)) < 0
    except (InvalidOperation, TypeError, ValueError):
        return text
    return f"−{text.lstrip('-')}" if negative else f"+{text}"


_ROUNDING_LABELS = {
    "down": gettext_lazy("Rounded down"),
    "half_up": gettext_lazy("Rounded half up"),
    "up": gettext_lazy("Rounded up"),
}


def points_step_text(step: dict) -> str:
    """Return one step of an accrual's computation (``PointsEntry.details``) in words.

    The step kinds are the earning engine's (``rewards.engine``): base, tier, multiplier,
    excluded, campaign, min_purchase, rounding. An unknown step gives an empty string.
    """
    kind = step.get("step")
    if kind == "base":
        return gettext("Base rate %(rate)s × %(amount)s = %(points)s") % {
            "rate": _number(step.get("rate"), None),
            "amount": _number(step.get("amount")),
            "points": _number(step.get("points")),
        }
    if kind == "tier":
        return gettext("%(tier)s ×%(multiplier)s") % {
            "tier": step.get("tier", ""), "multiplier": _number(step.get("multiplier"), None),
        }
    if kind == "multiplier":
        return gettext("%(rule)s ×%(multiplier)s on %(amount)s: %(points)s") % {
            "rule": step.get("rule") or step.get("subject", ""),
            "multiplier": _number(step.get("multiplier"), None),
            "amount": _number(step.get("amount")),
            "points": _signed(step.get("points")),
        }
    if kind == "excluded":
        return gettext("%(category)s excluded (%(amount)s earns nothing)") % {
            "category": step.get("category") or step.get("rule", ""),
            "amount": _number(step.get("amount")),
        }
    if kind == "campaign":
        return gettext("Campaign %(rule)s ×%(multiplier)s: %(points)s") % {
            "rule": step.get("rule", ""),
            "multiplier": _number(step.get("multiplier"), None),
            "points": _signed(step.get("points")),
        }
    if kind == "min_purchase":
        return gettext("%(amount)s is below the minimum purchase of %(minimum)s: no points") % {
            "amount": _number(step.get("amount")), "minimum": _number(step.get("minimum")),
        }
    if kind == "rounding":
        label = _ROUNDING_LABELS.get(step.get("mode"), _ROUNDING_LABELS["down"])
        return gettext("%(rounding)s: %(points)s") % {
            "rounding": label, "points": intcomma(step.get("points", 0)),
        }
    return ""


@register.filter
def points_details(steps) -> str:
    """Return how an accrual was computed, in words, e.g.
    "Base rate 0.05 × 12,000.00 = 600.00 · Gold ×1.5 · Coffee ×2 on 300.00: +15.00 ·
    Rounded down: 915". Empty for a row without steps.
    """
    if not isinstance(steps, list | tuple):
        return ""
    texts = (points_step_text(step) for step in steps if isinstance(step, dict))
    return " · ".join(text for text in texts if text)
