"""Periods of the dashboards: presets, custom ranges, the previous period of equal length.

Days are calendar days in the programme's time zone (``TIME_ZONE``); a period holds
both its first and its last day.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

PRESETS = (
    ("last_30", _("Last 30 days")),
    ("this_month", _("This month")),
    ("last_month", _("Last month")),
    ("last_90", _("Last 90 days")),
    ("this_quarter", _("This quarter")),
    ("this_year", _("This year")),
    ("last_365", _("Last 12 months")),
    ("custom", _("Custom dates")),
)
DEFAULT_PRESET = "last_30"


@dataclass(frozen=True)
class Period:
    """Days ``first`` to ``last``, both included."""

    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def previous(self) -> Period:
        """Return the period of equal length that ends the day before this one starts."""
        last = self.first - timedelta(days=1)
        return Period(first=last - timedelta(days=self.days - 1), last=last)

    def shifted_back(self, days: int) -> Period:
        delta = timedelta(days=days)
        return Period(first=self.first - delta, last=self.last - delta)

    def slug(self) -> str:
        """Return the period for a file name: ``2026-01-01_2026-01-31``."""
        return f"{self.first.isoformat()}_{self.last.isoformat()}"

    def contains(self, day: date) -> bool:
        return self.first <= day <= self.last


def day_start(day: date) -> datetime:
    """Return midnight at the start of ``day`` in the programme's time zone."""
    return timezone.make_aware(datetime.combine(day, time(0)))


def month_first(day: date) -> date:
    return day.replace(day=1)


def month_last(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def months_add(day: date, months: int) -> date:
    """Return the first day of the month ``months`` after ``day``'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def preset_period(preset: str, *, today: date) -> Period:
    """Return the period of a preset as of ``today`` (today included)."""
    if preset == "this_month":
        return Period(month_first(today), today)
    if preset == "last_month":
        last = month_first(today) - timedelta(days=1)
        return Period(month_first(last), last)
    if preset == "last_90":
        return Period(today - timedelta(days=89), today)
    if preset == "this_quarter":
        return Period(date(today.year, 3 * ((today.month - 1) // 3) + 1, 1), today)
    if preset == "this_year":
        return Period(date(today.year, 1, 1), today)
    if preset == "last_365":
        return Period(today - timedelta(days=364), today)
    return Period(today - timedelta(days=29), today)
