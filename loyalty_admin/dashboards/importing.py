"""The marketing spend import: one row per month (and channel), from a manager's sheet.

Registered with :func:`members.importing.registry.kind_register` from
``LoyaltyAdminConfig.ready``. The same file twice changes nothing the second time: a
row is matched by month and channel and is unchanged when its amount and note are.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from loyalty_admin.dashboards.services import marketing_spend_save
from loyalty_admin.models import MarketingSpend
from members.importing.files import CellError, cell_text, date_parser, decimal_parser, text_parser
from members.importing.registry import (
    NEW,
    UNCHANGED,
    UPDATED,
    Column,
    ImportKind,
    Record,
    kind_register,
)

NOT_A_MONTH = _("“%(value)s” is not a month: write it as yyyy-mm, mm.yyyy or a date in it.")
MONTH_IN_FUTURE = _("“%(value)s” is a month still to come; record spend once it is spent.")

_MONTH = re.compile(
    r"^\s*(?:(?P<y>\d{4})[-./](?P<m>\d{1,2})|(?P<m2>\d{1,2})[-./](?P<y2>\d{4}))\s*$"
)
_any_date = date_parser()


def parse_month(value: Any) -> date:
    """Return the first day of the month written as yyyy-mm, mm.yyyy or any date in it."""
    text = cell_text(value)
    match = _MONTH.match(text) if isinstance(value, str) else None
    if match:
        year = int(match["y"] or match["y2"])
        month = int(match["m"] or match["m2"])
        if not 1 <= month <= 12:
            raise CellError(NOT_A_MONTH, value=text)
        first = date(year, month, 1)
    else:
        try:
            first = _any_date(value).replace(day=1)
        except CellError:
            raise CellError(NOT_A_MONTH, value=text) from None
    if first > timezone.localdate().replace(day=1):
        raise CellError(MONTH_IN_FUTURE, value=text)
    return first


@kind_register
class MarketingSpendKind(ImportKind):
    """Marketing spend per month and channel."""

    key = "marketing_spend"
    label = _("Marketing spend")
    description = _(
        "Money spent on acquiring members, one row per month (and channel if you split it). "
        "A month and channel already recorded gets the file's amount."
    )
    record_name = _("month")
    permissions = ("loyalty_admin.add_marketingspend", "loyalty_admin.change_marketingspend")
    key_columns = ("month", "channel")
    columns = (
        Column("month", _("month"), parse_month, required=True,
               aliases=("month", "period", "date", "месяц", "период", "дата"),
               help_text=_("yyyy-mm, mm.yyyy or any date of the month.")),
        Column("amount", _("amount"), decimal_parser(places=2), required=True,
               aliases=("amount", "spend", "spent", "cost", "sum", "сумма", "расходы",
                        "затраты", "бюджет"),
               help_text=_("In the programme currency; decimal comma or point.")),
        Column("channel", _("channel"), text_parser(max_length=100),
               aliases=("channel", "source", "канал", "источник"),
               help_text=_("Optional, e.g. online ads.")),
        Column("note", _("note"), text_parser(max_length=500),
               aliases=("note", "comment", "примечание", "комментарий")),
    )

    def row_key(self, record: Record) -> str:
        month = record.values.get("month")
        if not month:
            return ""
        return f"{month:%Y-%m}|{(record.values.get('channel') or '').lower()}"

    def check(self, records: list[Record], job) -> None:
        months = {r.values["month"] for r in records if r.values.get("month")}
        known = {
            (spend.month, spend.channel): spend
            for spend in MarketingSpend.objects.filter(month__in=months)
        }
        for record in records:
            values = record.values
            if not values.get("month") or values.get("amount") is None:
                continue
            channel, note = values.get("channel") or "", values.get("note") or ""
            spend = known.get((values["month"], channel))
            if spend is None:
                record.outcome = NEW
            elif spend.amount == values["amount"] and spend.note == note:
                record.outcome = UNCHANGED
                continue
            else:
                record.outcome = UPDATED
            record.plan = {"month": values["month"], "amount": values["amount"],
                           "channel": channel, "note": note}

    def apply(self, records: list[Record], job) -> None:
        for record in records:
            marketing_spend_save(**record.plan, actor=job.created_by)
