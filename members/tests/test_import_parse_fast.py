"""The fast paths of reading an import file give what the general path gives.

Each parser's fast path (``members.importing.files.parser_fast``) and the runner's row
parser compiled once per file (``runner._row_parser``) must return the same values
(the same Decimal to the last zero, the same aware datetime) and the same errors, with
the same row, column and message, as the general path: ``cell_clean`` and the
column's parser on every cell, as the runner did before. No database is needed.
"""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from members.importing import files, runner
from members.importing.files import UNHANDLED, CellError, SourceRow, cell_clean, parser_fast
from members.importing.registry import Record, RowError
from rewards.importing import PurchasesKind

# ------------------------------------------------------------------ the general path


def general(parser, value):
    """What the runner did before: cell_clean and the parser, or the error's text."""
    cleaned = cell_clean(value)
    if cleaned is None:
        return ("blank",)
    try:
        return ("value", typed(parser(cleaned)))
    except CellError as error:
        return ("error", str(error))


def fast(parser, value, bound=None):
    """The same through the fast path when it reads the cell (files.cell_parse)."""
    cleaned = cell_clean(value)
    if cleaned is None:
        return ("blank",)
    bound = bound or parser_fast(parser)
    try:
        return ("value", typed(files.cell_parse(parser, cleaned, bound)))
    except CellError as error:
        return ("error", str(error))


def typed(value):
    """A value with what == hides: a Decimal's exponent, a datetime's zone and offset."""
    if isinstance(value, Decimal):
        return ("Decimal", str(value))
    if isinstance(value, datetime):
        return ("datetime", value.replace(tzinfo=None), value.tzinfo, value.utcoffset())
    return (type(value).__name__, value)


def reference_row_parse(kind, cmap, row):
    """The runner's _row_parse as it was before the compiled one (the specification)."""
    values: dict = {}
    errors: list[RowError] = []
    for column in kind.columns:
        position = cmap.index.get(column.key)
        value = None
        if position is not None and position < len(row.cells):
            value = cell_clean(row.cells[position])
        if value is None:
            if column.required:
                errors.append(RowError(row.number, column.key, str(files.VALUE_REQUIRED)))
            values[column.key] = None
            continue
        try:
            values[column.key] = column.parser(value)
        except CellError as error:
            errors.append(RowError(row.number, column.key, str(error)))
            values[column.key] = None
    return values, errors


def reference_records(kind, cmap, rows):
    """The runner's _records as it was before (row by row, tuple of a generator)."""
    current = None
    current_group = None
    for row in rows:
        values, errors = reference_row_parse(kind, cmap, row)
        group = tuple(values.get(key) for key in kind.group_by) if kind.group_by else None
        if (
            current is not None and group is not None and None not in group
            and group == current_group
        ):
            current.rows.append(row)
            current.lines.append(values)
            current.errors.extend(errors)
            continue
        if current is not None:
            yield current
        current = Record(rows=[row], lines=[values], errors=errors)
        current_group = group
    if current is not None:
        yield current


def line_typed(values: dict) -> list:
    return [(key, typed(value)) for key, value in values.items()]


# ------------------------------------------------------------------ tricky cells

NUMBERS = [
    "1234.56", "1234,56", "1 234,56", "1\u00a0234,56", "1\u202f234,56", "1\u2009234,56",
    "1,234.56", "1.234,56", "1 234 567", "12", " 7,5 ", "1 234,50", "0012,30", "-5", "−5",
    "+5", "-0", "1,2,3", "1,234", "1.234", "1.234.567", "1,234,567.891", "0", "0,00", "0,0",
    "0,001", "0,010", "12,", ",5", ".5", "1e5", "abc", "١٢٣", "١٢٣,٥", "1\t234", "5,000",
    "99999999999999999999999999999999,99", "0,1000000000000000000000000000001", "1 2 3,4",
    "'1 234,5", "1,5 ", "1..5", "1,,5", "", "  ", "\u00a0", "²", "1_000", "1 000,555",
    "3,5", "0,532", "2", "0,1", 1999.9899999999998, 12, 0, -3, True, Decimal("1.50"), 2.5,
]

MOMENTS = [
    "31.02.2026", "31.02.2026 10:00", "1.2.2026", "1.2.2026 10:00", "01.02.2026",
    "01.02.2026 10:00", "01.02.2026 10:00:30", "01.02.2026  10:00", "01.02.2026 24:00",
    "01.02.2026 23:60", "01.02.2026 9:05", "01.02.2026 10:00:30.5", "01.02.2026 10:00:61",
    "2026-02-01T10:00", "2026-02-01 10:00", "2026-02-01", "2026-2-1", "2026-02-01T10:00:05",
    "29.02.2024 23:59", "29.02.2025 10:00", "00.01.2026 10:00", "01.13.2026 10:00",
    "01.01.0000 10:00", "١٢.٠٢.٢٠٢٦ 10:00", "01.02.2026T10:00", "12/31/2024", "abc",
    "01.01.2999 10:00", "01.01.2999", "2999-01-01 00:00", "31.12.2025 18:05",
    "'01.02.2026 10:00", "01.02.2026\u00a010:00", datetime(2026, 2, 1, 10, 0),
    date(2026, 2, 1), 45000.5,
]

TEXTS = [
    "MSK-001", "msk-001", "4000 1234", "4000\u00a01234", "4000\u202f1234", "4000-1234",
    "a" * 32, "a" * 33, "straße", "ß" * 20, "'00123", "12345678901234567", 4000123.0,
    1e16, "Ab1", "x\ty",
]

CHOICES = ["store", "Store", " STORE ", "МАГАЗИН", "интернет-магазин", "bad", "Web Site"]


def _future_moments():
    now = timezone.localtime()
    soon = now + timedelta(minutes=2)
    late = now - timedelta(minutes=2)
    tomorrow = timezone.localdate() + timedelta(days=1)
    return [
        soon.strftime("%d.%m.%Y %H:%M"), late.strftime("%d.%m.%Y %H:%M"),
        soon.strftime("%Y-%m-%d %H:%M:%S"), tomorrow.strftime("%d.%m.%Y"),
        timezone.localdate().strftime("%d.%m.%Y"), tomorrow.strftime("%d.%m.%Y 00:00"),
        f"01.01.{timezone.localdate().year + 1} 00:00",
    ]


PARSERS = {
    "decimal": files.decimal_parser(),
    "decimal places 3, not zero": files.decimal_parser(places=3, zero=False),
    "decimal negative": files.decimal_parser(negative=True),
    "decimal places 0": files.decimal_parser(places=0),
    "integer": files.integer_parser(),
    "integer negative": files.integer_parser(negative=True),
    "date": files.date_parser(),
    "date not future": files.date_parser(future=False),
    "datetime": files.datetime_parser(),
    "datetime not future": files.datetime_parser(future=False),
    "text": files.text_parser(max_length=32),
    "text compact": files.text_parser(max_length=8, compact=True),
    "text upper compact": files.text_parser(max_length=20, upper=True, compact=True),
    "choice": PurchasesKind.column("channel").parser,
}


def _cells_for(name):
    if name.startswith(("decimal", "integer")):
        return NUMBERS
    if name.startswith(("date", "datetime")):
        return MOMENTS + _future_moments()
    if name.startswith("text"):
        return TEXTS + NUMBERS[:12]
    return CHOICES


@pytest.mark.parametrize("name", list(PARSERS))
def test_fast_path_gives_the_general_paths_values_and_errors(name):
    parser = PARSERS[name]
    bound = parser_fast(parser)
    assert bound is not None
    for value in _cells_for(name):
        assert fast(parser, value, bound) == general(parser, value), (name, value)


@pytest.mark.parametrize("zone", ["Europe/Moscow", "Asia/Vladivostok", "UTC", "America/New_York"])
def test_fast_datetimes_are_aware_in_the_current_time_zone(zone):
    with timezone.override(zone):
        parser = files.datetime_parser(future=False)
        bound = parser_fast(parser)
        for text in ["01.02.2026 10:00", "2026-02-01T10:00", "08.03.2026 02:30",
                     "01.11.2026 01:30", "29.03.2026 02:30"]:
            moment = bound(text)
            assert moment is not UNHANDLED
            assert typed(moment) == typed(parser(text)) == typed(
                timezone.make_aware(datetime.strptime(text.replace("T", " "),
                                                      "%d.%m.%Y %H:%M" if "." in text
                                                      else "%Y-%m-%d %H:%M"))
            )
            assert moment.tzinfo == timezone.get_current_timezone()


def test_fast_paths_read_the_common_cells_themselves():
    """The well-formed cells of a Russian Excel file never need the general parser."""
    cells = {
        "decimal": ["1 234,50", "1234,5", "12", "1.5", "0,00"],
        "decimal places 3, not zero": ["1", "0,532", "2,500"],
        "integer": ["0", "12", "007"],
        "date not future": ["01.02.2026", "2026-02-01"],
        "datetime not future": ["01.02.2026 10:00", "2026-02-01 10:00:05", "2026-02-01T10:00"],
        "text": ["MSK-001", "SKU-1-00042"],
        "text upper compact": ["ab 12", "AB12"],
        "choice": ["store", "Интернет-магазин"],
    }
    for name, texts in cells.items():
        bound = parser_fast(PARSERS[name])
        for text in texts:
            assert bound(cell_clean(text)) is not UNHANDLED, (name, text)


def test_a_moment_becomes_acceptable_once_it_has_passed(monkeypatch):
    """The fast path keeps a moment known to be past, and asks the clock again for a
    later one, as the parser does for every cell."""
    parser = files.datetime_parser(future=False)
    clock = [timezone.make_aware(datetime(2026, 2, 1, 10, 0))]
    monkeypatch.setattr(timezone, "now", lambda: clock[0])
    bound = parser_fast(parser)
    assert bound("01.02.2026 09:59") == timezone.make_aware(datetime(2026, 2, 1, 9, 59))
    assert bound("01.02.2026 10:01") is UNHANDLED
    with pytest.raises(CellError, match="is in the future"):
        parser("01.02.2026 10:01")
    clock[0] += timedelta(minutes=5)
    assert bound("01.02.2026 10:01") == timezone.make_aware(datetime(2026, 2, 1, 10, 1))
    assert bound("01.02.2026 10:06") is UNHANDLED


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(alphabet="0123456789 ,.-+\u00a0\u202fe'", max_size=14))
def test_numbers_at_random_read_alike(text):
    for name in ("decimal", "decimal places 3, not zero", "decimal negative", "integer"):
        assert fast(PARSERS[name], text) == general(PARSERS[name], text), (name, text)


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(alphabet="0123456789 .-:T\u00a0", min_size=8, max_size=20))
def test_moments_at_random_read_alike(text):
    for name in ("date", "date not future", "datetime", "datetime not future"):
        assert fast(PARSERS[name], text) == general(PARSERS[name], text), (name, text)


# ------------------------------------------------------------------ rows and records

HEADER = ["Магазин", "Номер чека", "Номер карты", "Дата покупки", "Артикул", "Категория",
          "Кол-во", "Сумма", "Канал", "Итого"]


def _rows():
    """Rows of a purchases file with every kind of trouble, numbered as a file would."""
    future = f"01.01.{timezone.localdate().year + 1} 10:00"
    cells = [
        ["MSK-001", "R1", "4000 0000 0001", "01.02.2026 10:00", "SKU-1", "coffee", "1",
         "1\u00a0234,50", "store", ""],
        ["MSK-001", "R1", "4000 0000 0001", "01.02.2026 10:00", "SKU-2", "", "0,532",
         "99,90", "", "1 334,40"],
        ["MSK-001", "R1", "", "", "SKU-3", "", "", "10", "", ""],
        ["MSK-001", "R2", "'4000000000002", "31.02.2026 10:00", "SKU-1", "", "0", "-5",
         "by pigeon", "1,234"],
        ["  ", "R3", "", "1.2.2026", "", "", "", "", "", ""],
        ["MSK-002", "", "4000", "2026-02-01T10:00", "SKU-1", "", "1", "1.234,50", "", ""],
        ["MSK-002", "R4", "4000", future, "SKU-1", "", "1,5", "1,2,3", "Online", "abc"],
        ["MSK-002", "R4", "4000", "01.02.2026  10:00", "SKU-1" * 20, "", "", "12,", "", ""],
        ["MSK-003", "R5"],  # a short row: the missing cells are blank
        ["\u00a0MSK-003 ", " R5", "", "01.02.2026 10:00", "SKU-9", "", "", "1 234 567", "", ""],
        ["MSK-003", "R5", "", "01.02.2026 10:00:30", "SKU-9", "", "−1", "+7", "", ""],
        ["WEB-001", "R6", "4000 1234 5678 9012 3456 7890 1234 5", "01.02.2026 10:00", "S",
         "", "2", "5", "", ""],
        ["WEB-001", "R6", "", "01.02.2026 10:00", "S", "", "", "", "", ""],
    ]
    return [SourceRow(number, tuple(row)) for number, row in enumerate(cells, start=2)]


def _xlsx_rows():
    """Typed cells, as openpyxl gives them from a workbook."""
    cells = [
        ["MSK-001", 1001.0, 4000000000001.0, datetime(2026, 2, 1, 10, 0), "SKU-1", None, 1,
         1999.9899999999998, None, None],
        ["MSK-001", 1001.0, 4000000000001.0, datetime(2026, 2, 1, 10, 0), "SKU-2", None,
         0.5, 12, None, 2011.99],
        ["MSK-002", 1e16, None, date(2026, 2, 1), True, None, -1, "1 234,5", None, None],
        ["MSK-002", "R9", None, 45000.5, None, None, 0, Decimal("1.005"), None, None],
    ]
    return [SourceRow(number, tuple(row)) for number, row in enumerate(cells, start=2)]


def _error_list(errors):
    return [(error.row, error.column, error.message) for error in errors]


@pytest.mark.parametrize("rows", [_rows, _xlsx_rows], ids=["csv", "xlsx"])
@pytest.mark.parametrize("header", [HEADER, HEADER[:8], HEADER[:4] + ["Note"] + HEADER[4:8]])
def test_compiled_row_parser_gives_the_same_values_and_errors(rows, header):
    kind = PurchasesKind
    cmap = runner.columns_map(kind, header)
    parse = runner._row_parser(kind, cmap)
    for row in rows():
        if len(header) != len(HEADER):  # the same cells under a shorter header
            row = SourceRow(row.number, row.cells[:len(header)])
        values, errors = parse(row)
        expected_values, expected_errors = reference_row_parse(kind, cmap, row)
        assert line_typed(values) == line_typed(expected_values), row
        assert _error_list(errors) == _error_list(expected_errors), row
        assert list(values) == [column.key for column in kind.columns]
        one_values, one_errors = runner._row_parse(kind, cmap, row)
        assert line_typed(one_values) == line_typed(values)
        assert _error_list(one_errors) == _error_list(errors)


def test_records_group_as_before():
    kind = PurchasesKind
    cmap = runner.columns_map(kind, HEADER)
    got = list(runner._records(kind, cmap, iter(_rows())))
    expected = list(reference_records(kind, cmap, iter(_rows())))
    assert [[row.number for row in r.rows] for r in got] == [
        [row.number for row in r.rows] for r in expected
    ]
    for record, reference in zip(got, expected, strict=True):
        assert [line_typed(line) for line in record.lines] == [
            line_typed(line) for line in reference.lines
        ]
        assert _error_list(record.errors) == _error_list(reference.errors)
        assert line_typed(record.values) == line_typed(reference.values)


def test_errors_name_their_row_column_and_reason():
    cmap = runner.columns_map(PurchasesKind, HEADER)
    parse = runner._row_parser(PurchasesKind, cmap)
    _values, errors = parse(_rows()[3])
    assert _error_list(errors) == [
        (5, "purchased_at", "“31.02.2026 10:00” is not a date: write it as dd.mm.yyyy or "
                            "yyyy-mm-dd, with the time as HH:MM or HH:MM:SS if you have it."),
        (5, "total", "“1,234” has more than 2 digits after the decimal point."),
        (5, "channel", "“by pigeon” is not one of: store, in store, shop, магазин, online, "
                       "web, web site, сайт, интернет, интернет-магазин, app, mobile app, "
                       "приложение."),
        (5, "quantity", "“0” must be greater than zero."),
        (5, "amount", "“-5” is negative; only zero or more is allowed here."),
    ]
    _values, errors = parse(_rows()[2])
    assert _error_list(errors) == [(4, "purchased_at", "This value is required.")]
    values, errors = parse(_rows()[4])
    assert _error_list(errors) == [(6, "store", "This value is required.")]
    assert values["purchased_at"] == timezone.make_aware(datetime(2026, 2, 1))


def test_record_values_follow_lines_added_later():
    first = {"store": "A", "total": None, "sku": "1"}
    record = Record(rows=[SourceRow(2, ()), SourceRow(3, ())],
                    lines=[first, {"store": "A", "total": Decimal(5), "sku": "2"}])
    assert record.values == {"store": "A", "total": Decimal(5), "sku": "1"}
    assert record.values is record.values  # merged once
    record.rows.append(SourceRow(4, ()))
    record.lines.append({"store": "A", "total": None, "sku": "3", "extra": 1})
    assert record.values == {"store": "A", "total": Decimal(5), "sku": "1", "extra": 1}
    single = Record(rows=[SourceRow(2, ())], lines=[first])
    assert single.values is first


def test_blank_rows_are_skipped_and_keep_their_numbers():
    content = (
        "\ufeffМагазин;Номер чека;Сумма\r\n"
        "MSK-001;R1;10\r\n"
        ";;\r\n"
        "\r\n"
        " ;\u00a0;\t\r\n"
        "MSK-001;R2;1\u00a0234,50\r\n"
    ).encode()
    table = files.table_open(io.BytesIO(content))
    assert table.delimiter == ";" and table.encoding == "utf-8-sig"
    assert [(row.number, row.cells) for row in table.rows] == [
        (2, ("MSK-001", "R1", "10")), (6, ("MSK-001", "R2", "1\u00a0234,50")),
    ]
