"""The tables behind the dashboards, on screen and as CSV or XLSX downloads.

A dashboard builds its tables once per request; the page shows them and the export
view writes the very same rows, so a download holds the numbers on screen. Text cells
are neutralised against formulas (``members.exports.cell_neutralise``) in both formats;
numbers stay numbers. Headers are written in the language of the request.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.http import HttpResponse
from django.utils.text import capfirst

from members.exports import BOM, cell_neutralise, csv_line

TEXT, INT, MONEY, PERCENT, DECIMAL = "text", "int", "money", "percent", "decimal"
# A column whose rows differ in kind (the key figures): integers as such, else 2 places.
AUTO = "auto"


@dataclass
class Col:
    """A column: its header (translatable) and what kind of number it holds."""

    label: Any
    kind: str = INT


@dataclass
class DashboardTable:
    """One table of a dashboard, and the chart drawn from it (if any)."""

    key: str
    title: Any
    columns: list[Col]
    rows: list[list[Any]]
    chart: Any = None
    note: Any = ""
    # Cell backgrounds for heat maps: same shape as rows, None for none.
    shades: list[list[str | None]] | None = None
    wide: bool = False
    extra: dict = field(default_factory=dict)

    def headers(self) -> list[str]:
        return [str(capfirst(str(column.label))) for column in self.columns]

    def cells(self):
        """Yield each row as (value, kind, shade) triples, for the template."""
        for number, row in enumerate(self.rows):
            shades = self.shades[number] if self.shades else [None] * len(row)
            yield [
                (value, column.kind, shade)
                for value, column, shade in zip(row, self.columns, shades, strict=True)
            ]


def _csv_cell(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal | float):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return cell_neutralise(str(value))


def _xlsx_cell(value: Any) -> Any:
    if value is None or isinstance(value, int | Decimal | float | bool):
        return value
    if hasattr(value, "isoformat"):
        return value
    return cell_neutralise(re.sub(r"[\000-\010\013\014\016-\037]", "", str(value)))


def table_csv(table: DashboardTable) -> str:
    """Return the table as CSV: UTF-8 with BOM (Excel reads Cyrillic), comma-separated."""
    lines = [BOM + csv_line([cell_neutralise(h) for h in table.headers()])]
    lines += [csv_line([_csv_cell(value) for value in row]) for row in table.rows]
    return "".join(lines)


def table_xlsx(table: DashboardTable, *, sheet_title: str) -> bytes:
    """Return the table as an XLSX workbook with a bold, frozen header row."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(re.sub(r"[\[\]:*?/\\]", " ", sheet_title)[:31] or "Table")
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    header = []
    for text in table.headers():
        cell = WriteOnlyCell(sheet, value=cell_neutralise(text))
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    for row in table.rows:
        sheet.append([_xlsx_cell(value) for value in row])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def table_response(table: DashboardTable, *, file_format: str, filename: str) -> HttpResponse:
    """Return the download of ``table`` in ``file_format`` ("csv" or "xlsx")."""
    if file_format == "xlsx":
        body = table_xlsx(table, sheet_title=str(capfirst(str(table.title))))
    else:
        body = table_csv(table).encode()
    response = HttpResponse(body, content_type=CONTENT_TYPES[file_format])
    response["Content-Disposition"] = f'attachment; filename="{filename}.{file_format}"'
    return response
