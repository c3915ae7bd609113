"""Template filters for showing points the way staff read them."""

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma

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
