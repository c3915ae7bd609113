"""Writes of the dashboards: marketing spend recorded by managers (by hand or from a file)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.db import transaction

from loyalty_admin.models import MarketingSpend


@transaction.atomic
def marketing_spend_save(
    *, month: date, amount: Decimal, channel: str = "", note: str = "", actor=None,
) -> tuple[MarketingSpend, bool]:
    """Record the spend of ``month`` (any day of it) on ``channel``; return it and whether
    it was new. The same month and channel again replaces the amount and note."""
    first = month.replace(day=1)
    spend = MarketingSpend.objects.select_for_update().filter(month=first, channel=channel).first()
    created = spend is None
    if created:
        spend = MarketingSpend(month=first, channel=channel)
    spend.amount, spend.note, spend.recorded_by = amount, note, actor
    spend.full_clean()
    spend.save()
    return spend, created
