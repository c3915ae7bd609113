"""Read an uploaded CSV or XLSX file into numbered rows, and parse its cells.

What real files look like: CSV from Russian Excel in Windows-1251 with ``;``, UTF-8 with
or without a BOM from other systems, XLSX from anywhere; decimal commas, non-breaking
spaces between thousands, dates as ``dd.mm.yyyy`` or ``yyyy-mm-dd``, phone numbers in
any common format. Everything that can be refused is refused before parsing where the
file tells us enough (size; an XLSX's uncompressed size and declared row count), and
while streaming otherwise, so a hostile file never costs more than the limits.

Rows are numbered as a spreadsheet shows them: the header is row 1, the first data
row is row 2; blank rows are skipped but keep their numbers.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import itertools
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import IO, Any

from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext_lazy as _

from members.phone import phone_normalise

# ------------------------------------------------------------------ limits

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_ROWS = 1_000_000
DEFAULT_MAX_UNCOMPRESSED_BYTES = 500 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What an upload may weigh; read from settings with defaults in code."""

    max_bytes: int
    max_rows: int
    max_uncompressed_bytes: int


def limits_get() -> Limits:
    """Return the import limits: ``IMPORT_MAX_BYTES``, ``IMPORT_MAX_ROWS`` and
    ``IMPORT_MAX_XLSX_UNCOMPRESSED_BYTES`` from settings, else the defaults."""
    return Limits(
        max_bytes=int(getattr(settings, "IMPORT_MAX_BYTES", DEFAULT_MAX_BYTES)),
        max_rows=int(getattr(settings, "IMPORT_MAX_ROWS", DEFAULT_MAX_ROWS)),
        max_uncompressed_bytes=int(
            getattr(settings, "IMPORT_MAX_XLSX_UNCOMPRESSED_BYTES", DEFAULT_MAX_UNCOMPRESSED_BYTES)
        ),
    )


# ------------------------------------------------------------------ messages
# Constants, so that screens and tests agree on them.

FILE_EMPTY = _("The file is empty.")
FILE_TOO_LARGE = _(
    "The file is %(size)s; the limit is %(limit)s. Split it into smaller files."
)
FILE_NOT_TEXT = _(
    "The file is not a CSV or XLSX file in UTF-8 or Windows-1251. Save it from Excel as "
    "“CSV UTF-8” or as an Excel workbook (.xlsx) and upload it again."
)
FILE_OLD_EXCEL = _(
    "Old Excel files (.xls) are not supported: save the file as an Excel workbook (.xlsx) "
    "or as CSV and upload it again."
)
FILE_NOT_XLSX = _("The file looks like a ZIP archive but is not a readable Excel workbook.")
FILE_XLSX_TOO_LARGE = _(
    "The workbook unpacks to %(size)s; the limit is %(limit)s. Split it into smaller files."
)
FILE_TOO_MANY_ROWS = _(
    "The file has more than %(limit)s rows, the limit. Split it into smaller files."
)
FILE_NO_HEADER = _("The file has no header row: the first row must hold the column names.")
FILE_CSV_BROKEN = _("The CSV file cannot be read at row %(row)s: %(reason)s.")
FILE_NO_SHEET = _("The workbook has no worksheet.")

VALUE_REQUIRED = _("This value is required.")
NOT_A_NUMBER = _("“%(value)s” is not a number.")
TOO_MANY_DECIMALS = _("“%(value)s” has more than %(places)s digits after the decimal point.")
NEGATIVE = _("“%(value)s” is negative; only zero or more is allowed here.")
NOT_POSITIVE = _("“%(value)s” must be greater than zero.")
NOT_WHOLE = _("“%(value)s” is not a whole number.")
NOT_A_DATE = _("“%(value)s” is not a date: write it as dd.mm.yyyy or yyyy-mm-dd.")
NOT_A_DATETIME = _(
    "“%(value)s” is not a date: write it as dd.mm.yyyy or yyyy-mm-dd, with the time as "
    "HH:MM or HH:MM:SS if you have it."
)
IN_FUTURE = _("“%(value)s” is in the future.")
NOT_A_PHONE = _(
    "“%(value)s” is not a phone number: give 10 digits, or 11 with the country code, "
    "e.g. +7 912 345-67-89."
)
NOT_A_BOOLEAN = _("“%(value)s” is not yes or no: write yes/no, да/нет, 1/0 or true/false.")
TOO_LONG = _("“%(value)s” is longer than %(limit)s characters.")
NUMBER_LOST_DIGITS = _(
    "The number %(value)s was stored as a number and lost its last digits; format the "
    "column as text in Excel and export it again."
)
NOT_A_CHOICE = _("“%(value)s” is not one of: %(choices)s.")


class ImportFileError(Exception):
    """The file as a whole cannot be imported; nothing is imported."""

    def __init__(self, message, **params):
        self.message = message
        self.params = params
        super().__init__(str(self))

    def __str__(self) -> str:
        return str(self.message) % self.params if self.params else str(self.message)


class CellError(Exception):
    """One cell's value is not acceptable; its row is refused with this message."""

    def __init__(self, message, **params):
        self.message = message
        self.params = params
        super().__init__(str(self))

    def __str__(self) -> str:
        return str(self.message) % self.params if self.params else str(self.message)


# ------------------------------------------------------------------ reading


@dataclass(slots=True)
class SourceRow:
    """A data row: its number as a spreadsheet shows it and its cells as read."""

    number: int
    cells: tuple


@dataclass
class Table:
    """An opened file: its header cells and a stream of its non-blank data rows."""

    format: str
    header: list[str]
    rows: Iterator[SourceRow]
    encoding: str = ""
    delimiter: str = ","
    details: dict = field(default_factory=dict)


_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # old .xls (and .doc)
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# Control characters never found in a text export (tab, CR and LF are fine).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CHUNK = 1024 * 1024


def _size_of(source: IO[bytes]) -> int:
    source.seek(0, io.SEEK_END)
    size = source.tell()
    source.seek(0)
    return size


def size_text(size: int) -> str:
    """Return a size as people read it ("3.2 MB"), in the active language."""
    return str(filesizeformat(size)).replace("\xa0", " ")


def _count_text(count: int) -> str:
    return number_format(count, force_grouping=True)


def table_open(source: IO[bytes]) -> Table:
    """Open an uploaded file (binary, seekable) as a :class:`Table`.

    Detect XLSX by its ZIP signature, else read CSV in UTF-8 (with or without BOM) or
    Windows-1251. Raise :class:`ImportFileError` for a file over the limits, of another
    kind, or without a header. The rows are read lazily; the row limit is enforced
    while reading them.
    """
    limits = limits_get()
    # A Django File (storage, upload) wraps the real file object: read that one.
    while not isinstance(source, io.IOBase) and hasattr(source, "file"):
        source = source.file
    size = _size_of(source)
    if size == 0:
        raise ImportFileError(FILE_EMPTY)
    if size > limits.max_bytes:
        raise ImportFileError(
            FILE_TOO_LARGE, size=size_text(size), limit=size_text(limits.max_bytes),
        )
    head = source.read(8)
    source.seek(0)
    if head.startswith(_ZIP_MAGIC):
        return _xlsx_open(source, limits)
    if head.startswith(_OLE_MAGIC):
        raise ImportFileError(FILE_OLD_EXCEL)
    if head.startswith(_UTF16_BOMS) and not head.startswith(codecs.BOM_UTF8):
        raise ImportFileError(FILE_NOT_TEXT)
    return _csv_open(source, limits)


# ---------------------------------------------------------------- CSV


def _encoding_detect(source: IO[bytes]) -> str:
    """Return "utf-8-sig" or "cp1251" for the whole file, or raise: strict UTF-8 first."""
    for encoding in ("utf-8-sig", "cp1251"):
        source.seek(0)
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        try:
            while chunk := source.read(_CHUNK):
                if _CONTROL.search(decoder.decode(chunk)):
                    # NUL bytes (UTF-16, binary) or other controls: not a text export.
                    raise ImportFileError(FILE_NOT_TEXT)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        finally:
            source.seek(0)
        return encoding
    raise ImportFileError(FILE_NOT_TEXT)


def _delimiter_detect(line: str) -> str:
    """Return the delimiter the header line uses: the most frequent of ; , and tab."""
    counts = {";": 0, ",": 0, "\t": 0}
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(counts.values())
    if best == 0:
        return ","
    # On a tie prefer ; (Russian Excel), then tab, then comma.
    return next(delimiter for delimiter in (";", "\t", ",") if counts[delimiter] == best)


def _csv_open(source: IO[bytes], limits: Limits) -> Table:
    encoding = _encoding_detect(source)
    text = io.TextIOWrapper(source, encoding=encoding, newline="")
    first = text.readline()
    while first and not first.strip():
        first = text.readline()
    if not first.strip():
        raise ImportFileError(FILE_NO_HEADER)
    delimiter = _delimiter_detect(first)
    reader = csv.reader(itertools.chain([first], text), delimiter=delimiter)
    try:
        header = [cell.strip() for cell in next(reader)]
    except csv.Error as error:
        raise ImportFileError(FILE_CSV_BROKEN, row=1, reason=str(error)) from None

    def rows() -> Iterator[SourceRow]:
        number = 1
        last = limits.max_rows + 1
        try:
            for cells in reader:
                number += 1
                if number > last:
                    raise ImportFileError(FILE_TOO_MANY_ROWS, limit=_count_text(limits.max_rows))
                # Blank when every cell is whitespace: one join and strip, not one per cell.
                if "".join(cells).strip():
                    yield SourceRow(number, tuple(cells))
        except csv.Error as error:
            raise ImportFileError(FILE_CSV_BROKEN, row=number + 1, reason=str(error)) from None
        finally:
            # Leave the caller's file to the caller (it may be closed already).
            with contextlib.suppress(ValueError):
                text.detach()

    return Table(
        format="csv", header=header, rows=rows(), encoding=encoding, delimiter=delimiter,
    )


# ---------------------------------------------------------------- XLSX

_DIMENSION = re.compile(rb"<(?:\w+:)?dimension\s+ref=\"(?:[A-Z]+\d+:)?[A-Z]+(\d+)\"")
_SHEET_PATH = re.compile(r"^xl/worksheets/[^/]+\.xml$")


def _xlsx_precheck(source: IO[bytes], limits: Limits) -> None:
    """Refuse a workbook from its ZIP directory alone, before any XML is parsed.

    The directory gives each part's uncompressed size (ZipExtFile never returns more
    than that, so it is a real bound); each sheet's ``<dimension>`` at the start of
    its XML gives its declared last row. A sheet without one is bounded while reading.
    """
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ImportFileError(FILE_NOT_XLSX) from None
    with archive:
        members = archive.infolist()
        if "xl/workbook.xml" not in {member.filename for member in members}:
            raise ImportFileError(FILE_NOT_XLSX)
        unpacked = sum(member.file_size for member in members)
        if unpacked > limits.max_uncompressed_bytes:
            raise ImportFileError(
                FILE_XLSX_TOO_LARGE, size=size_text(unpacked),
                limit=size_text(limits.max_uncompressed_bytes),
            )
        for member in members:
            if not _SHEET_PATH.match(member.filename):
                continue
            try:
                with archive.open(member) as part:
                    start = part.read(64 * 1024)
            # zipfile raises NotImplementedError for a compression method it cannot read.
            except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):
                raise ImportFileError(FILE_NOT_XLSX) from None
            match = _DIMENSION.search(start)
            if match and int(match.group(1)) > limits.max_rows + 1:
                raise ImportFileError(FILE_TOO_MANY_ROWS, limit=_count_text(limits.max_rows))
    source.seek(0)


def _xlsx_open(source: IO[bytes], limits: Limits) -> Table:
    _xlsx_precheck(source, limits)
    # openpyxl parses with defusedxml when it is installed (it is: requirements.txt).
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(source, read_only=True, data_only=True)
    except Exception:  # noqa: BLE001 - any parse failure means "not a readable workbook"
        raise ImportFileError(FILE_NOT_XLSX) from None
    if not workbook.worksheets:
        workbook.close()
        raise ImportFileError(FILE_NO_SHEET)
    sheet = workbook.worksheets[0]
    # Never trust the declared size: read every row and column that is really there.
    sheet.reset_dimensions()
    values = sheet.iter_rows(values_only=True)
    number = 0
    header: list[str] = []
    try:
        for cells in values:
            number += 1
            if any(not _blank(cell) for cell in cells):
                header = [cell_text(cell).strip() for cell in cells]
                break
    except Exception:  # noqa: BLE001
        workbook.close()
        raise ImportFileError(FILE_NOT_XLSX) from None
    if not header:
        workbook.close()
        raise ImportFileError(FILE_NO_HEADER)
    header_number = number
    while header and not header[-1]:
        header.pop()

    def rows() -> Iterator[SourceRow]:
        row_number = header_number
        try:
            for cells in values:
                row_number += 1
                if row_number > limits.max_rows + 1:
                    raise ImportFileError(FILE_TOO_MANY_ROWS, limit=_count_text(limits.max_rows))
                if any(not _blank(cell) for cell in cells):
                    yield SourceRow(number=row_number, cells=tuple(cells))
        finally:
            workbook.close()

    return Table(format="xlsx", header=header, rows=rows(), details={"sheet": sheet.title})


# ------------------------------------------------------------------ cells


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def cell_text(value: Any) -> str:
    """Return a cell as text, as a person would type it back (for the rejected file)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.strftime("%Y-%m-%d")
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.strftime("%Y-%m-%d")
    return str(value)


def cell_clean(value: Any) -> Any:
    """Return a cell with surrounding space and Excel's text marker (a leading ')
    removed; None when it is blank."""
    if isinstance(value, str):
        value = value.strip().replace("\u00a0", " ").strip()
        if value.startswith("'"):
            value = value[1:].strip()
        return value or None
    return value


Parser = Callable[[Any], Any]

# What a parser's fast path returns for a cell it does not read itself: the parser
# proper then reads the cell (and refuses it with its own message).
UNHANDLED = object()
# Values of repeated cells a fast path keeps (a receipt repeats its moment on each
# line); emptied when full, so a file never costs more than this.
_CACHE_SIZE = 4096


def _remember(known: dict, text: str, value):
    """Keep a fast path's answer for the next equal cell (at most ``_CACHE_SIZE`` kept,
    then start again) and return it."""
    if len(known) >= _CACHE_SIZE:
        known.clear()
    known[text] = value
    return value


def parser_fast(parser: Parser) -> Callable[[str], Any] | None:
    """Return ``parser``'s fast path for reading one file, or None if it has none.

    A fast path takes a text cell as :func:`cell_clean` leaves it (never blank) and
    returns exactly what ``parser`` returns for the common, well-formed spellings, or
    :data:`UNHANDLED` for anything else; it never raises. The caller then asks
    ``parser``, which reads the unusual spellings and gives every error message. A
    fast path may keep what it learnt during the file (the time zone, a moment known to
    be past, repeated values), so get a new one for each file.
    """
    bind = getattr(parser, "fast_bind", None)
    return bind() if bind is not None else None


def cell_parse(parser: Parser, value: Any, fast: Callable[[str], Any] | None = None) -> Any:
    """Return ``parser(value)`` for a cleaned, non-blank cell, through ``fast`` (from
    :func:`parser_fast`) when it reads the cell; raise :class:`CellError` as the parser."""
    if fast is not None and value.__class__ is str:
        parsed = fast(value)
        if parsed is not UNHANDLED:
            return parsed
    return parser(value)


_THOUSANDS_SPACES = re.compile(r"[\s\u00a0\u202f\u2009]")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
# What the decimal fast path reads once ASCII spaces are out: digits, one comma or dot.
_PLAIN_DECIMAL = re.compile(r"([0-9]+)(?:[,.]([0-9]+))?")
# Digits grouped by thousands with a comma or a dot: 1,234,567 or 1.234.567.
_GROUPED = {
    ",": re.compile(r"[+-]?\d{1,3}(?:,\d{3})+"),
    ".": re.compile(r"[+-]?\d{1,3}(?:\.\d{3})+"),
}


def parse_decimal(value: Any) -> Decimal:
    """Return a number written with a decimal comma or dot, spaces between thousands.

    "1 234,56", "1 234,56" (non-breaking space), "1,234.56", "1.234,56" and "1234.56"
    all give 1234.56; a single comma is a decimal comma.
    """
    if isinstance(value, bool):
        raise CellError(NOT_A_NUMBER, value=cell_text(value))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        return value
    raw = str(value)
    text = _THOUSANDS_SPACES.sub("", raw).replace("\u2212", "-")
    thousands = decimal_mark = ""
    if "," in text and "." in text:
        decimal_mark = "," if text.rfind(",") > text.rfind(".") else "."
        thousands = "." if decimal_mark == "," else ","
    elif text.count(",") > 1 or text.count(".") > 1:
        thousands = "," if "," in text else "."
    else:
        decimal_mark = "," if "," in text else "."
    whole, _mark, fraction = text.partition(decimal_mark) if decimal_mark else (text, "", "")
    if thousands:
        if not _GROUPED[thousands].fullmatch(whole):
            raise CellError(NOT_A_NUMBER, value=raw)
        whole = whole.replace(thousands, "")
    text = f"{whole}.{fraction}" if _mark else whole
    if not _NUMBER.match(text):
        raise CellError(NOT_A_NUMBER, value=raw)
    try:
        return Decimal(text)
    except InvalidOperation:
        raise CellError(NOT_A_NUMBER, value=raw) from None


def decimal_parser(*, places: int = 2, negative: bool = False, zero: bool = True) -> Parser:
    """Return a parser of amounts with at most ``places`` decimals.

    ``negative`` False refuses amounts below zero; ``zero`` False refuses zero too.
    """

    def parse(value: Any) -> Decimal:
        number = parse_decimal(value)
        shown = cell_text(value)
        if isinstance(value, float):
            # Excel stores 1999.99 as 1999.9899999999998 after arithmetic: round as shown.
            number = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        elif -number.normalize().as_tuple().exponent > places:
            raise CellError(TOO_MANY_DECIMALS, value=shown, places=places)
        if not negative and number < 0:
            raise CellError(NEGATIVE, value=shown)
        if not zero and number == 0:
            raise CellError(NOT_POSITIVE, value=shown)
        return number

    def fast_bind() -> Callable[[str], Any]:
        known: dict[str, Decimal] = {}  # accepted cells: quantities and prices repeat

        def fast(text: str) -> Any:
            number = known.get(text)
            if number is not None:
                return number
            # Digits, spaces between them, one decimal comma or dot: what parse_decimal
            # reads the same way (Decimal of the same string). Signs, other spaces and
            # thousands marks go to the parser.
            plain = text.replace(" ", "") if " " in text else text
            match = _PLAIN_DECIMAL.fullmatch(plain)
            if match is None:
                return UNHANDLED
            whole, fraction = match.groups()
            if fraction is None:
                number = Decimal(whole)
            elif len(fraction.rstrip("0")) > places:
                return UNHANDLED
            else:
                number = Decimal(f"{whole}.{fraction}")
            if not zero and not number:
                return UNHANDLED
            return _remember(known, text, number)

        return fast

    parse.fast_bind = fast_bind
    return parse


def integer_parser(*, negative: bool = False) -> Parser:
    """Return a parser of whole numbers ("1 000" is a thousand)."""

    def parse(value: Any) -> int:
        number = parse_decimal(value)
        if number != number.to_integral_value():
            raise CellError(NOT_WHOLE, value=cell_text(value))
        if not negative and number < 0:
            raise CellError(NEGATIVE, value=cell_text(value))
        return int(number)

    def fast_bind() -> Callable[[str], Any]:
        def fast(text: str) -> Any:
            # ASCII digits only: int() would also take "+1", "1_000" and other scripts.
            return int(text) if text.isdigit() and text.isascii() else UNHANDLED

        return fast

    parse.fast_bind = fast_bind
    return parse


# The spellings the fast paths read (ASCII digits, two-digit day, month, hour): all
# else goes to _DATE_TIME through _datetime_read.
_FAST_DATE = re.compile(r"([0-9]{2})\.([0-9]{2})\.([0-9]{4})|([0-9]{4})-([0-9]{2})-([0-9]{2})")
_FAST_DATETIME = re.compile(
    r"(?:([0-9]{2})\.([0-9]{2})\.([0-9]{4})|([0-9]{4})-([0-9]{2})-([0-9]{2}))"
    r"[ T]([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?"
)
_DATE_TIME = re.compile(
    r"^(?:(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})|(?P<iy>\d{4})-(?P<im>\d{1,2})-(?P<id>\d{1,2}))"
    r"(?:[ T]+(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.\d+)?)?)?$"
)


def _datetime_read(value: Any, message) -> tuple[datetime, bool]:
    """Return a naive datetime and whether a time of day was given."""
    if isinstance(value, datetime):
        if timezone.is_aware(value):
            value = timezone.make_naive(value)
        return value, value.time() != time(0)
    if isinstance(value, date):
        return datetime.combine(value, time(0)), False
    if not isinstance(value, str):
        raise CellError(message, value=cell_text(value))
    match = _DATE_TIME.match(" ".join(value.split()))
    if not match:
        raise CellError(message, value=value)
    parts = match.groupdict()
    year, month, day = (
        (parts["y"], parts["m"], parts["d"]) if parts["y"] else
        (parts["iy"], parts["im"], parts["id"])
    )
    try:
        moment = datetime(
            int(year), int(month), int(day),
            int(parts["H"] or 0), int(parts["M"] or 0), int(parts["S"] or 0),
        )
    except ValueError:
        raise CellError(message, value=value) from None
    return moment, parts["H"] is not None


def date_parser(*, future: bool = True) -> Parser:
    """Return a parser of dates (dd.mm.yyyy, yyyy-mm-dd; a time of day is ignored)."""

    def parse(value: Any) -> date:
        moment, _has_time = _datetime_read(value, NOT_A_DATE)
        if not future and moment.date() > timezone.localdate():
            raise CellError(IN_FUTURE, value=cell_text(value))
        return moment.date()

    def fast_bind() -> Callable[[str], Any]:
        # A day known to have come (today when bound): earlier days need no clock.
        today = timezone.localdate()

        def fast(text: str) -> Any:
            nonlocal today
            match = _FAST_DATE.fullmatch(text)
            if match is None:
                return UNHANDLED
            day, month, year, iso_year, iso_month, iso_day = match.groups()
            try:
                result = (
                    date(int(year), int(month), int(day)) if year else
                    date(int(iso_year), int(iso_month), int(iso_day))
                )
            except ValueError:
                return UNHANDLED
            if not future and result > today:
                today = timezone.localdate()
                if result > today:
                    return UNHANDLED
            return result

        return fast

    parse.fast_bind = fast_bind
    return parse


def datetime_parser(*, future: bool = True) -> Parser:
    """Return a parser of moments: a date with an optional HH:MM[:SS], in the programme's
    time zone; a date alone is midnight."""

    def parse(value: Any) -> datetime:
        moment, has_time = _datetime_read(value, NOT_A_DATETIME)
        aware = timezone.make_aware(moment)
        if not future:
            late = aware > timezone.now() if has_time else (
                moment.date() > timezone.localdate()
            )
            if late:
                raise CellError(IN_FUTURE, value=cell_text(value))
        return aware

    def fast_bind() -> Callable[[str], Any]:
        # Read once per file: the current time zone (what make_aware would ask for on
        # every cell) and a moment known to be past, so that earlier moments need no
        # clock; a later one asks the clock again, as the parser does.
        zone = timezone.get_current_timezone()
        past = timezone.now()
        # Accepted cells (a receipt repeats its moment on every line). A moment once
        # found past stays past, so a cell found here needs no check.
        known: dict[str, datetime] = {}

        def fast(text: str) -> Any:
            nonlocal past
            aware = known.get(text)
            if aware is not None:
                return aware
            match = _FAST_DATETIME.fullmatch(text)
            if match is None:
                return UNHANDLED
            day, month, year, iso_year, iso_month, iso_day, hour, minute, second = (
                match.groups()
            )
            try:
                aware = datetime(
                    int(year or iso_year), int(month or iso_month), int(day or iso_day),
                    int(hour), int(minute), int(second or 0), tzinfo=zone,
                )
            except ValueError:
                return UNHANDLED
            if not future and aware > past:
                past = timezone.now()
                if aware > past:
                    return UNHANDLED
            return _remember(known, text, aware)

        return fast

    parse.fast_bind = fast_bind
    return parse


def parse_phone(value: Any) -> str:
    """Return a phone as stored: digits with the country code (members.phone)."""
    text = cell_text(value)
    digits = phone_normalise(text)
    if not 11 <= len(digits) <= 15:
        raise CellError(NOT_A_PHONE, value=text)
    return digits


_TRUE = {"1", "yes", "y", "true", "t", "да", "д", "истина", "+", "on", "x", "✓"}
_FALSE = {"0", "no", "n", "false", "f", "нет", "н", "ложь", "-", "off"}


def parse_bool(value: Any) -> bool:
    """Return yes or no from yes/no, да/нет, 1/0, true/false (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    text = cell_text(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CellError(NOT_A_BOOLEAN, value=cell_text(value))


def text_parser(*, max_length: int, upper: bool = False, compact: bool = False) -> Parser:
    """Return a parser of text up to ``max_length`` characters.

    ``compact`` removes every space (card numbers, codes: "4000 1234" is "40001234");
    ``upper`` upper-cases. A number from a spreadsheet gives its digits; a number of
    16 digits or more was rounded by Excel and is refused.
    """

    def parse(value: Any) -> str:
        if isinstance(value, float) and value.is_integer() and abs(value) >= 1e15:
            raise CellError(NUMBER_LOST_DIGITS, value=f"{value:.0f}")
        text = cell_text(value).strip()
        if compact:
            text = _THOUSANDS_SPACES.sub("", text)
        if upper:
            text = text.upper()
        if len(text) > max_length:
            raise CellError(TOO_LONG, value=text[:40], limit=max_length)
        return text

    def fast_bind() -> Callable[[str], Any]:
        def fast(text: str) -> Any:
            # Letters and digits only hold no space to remove.
            if compact and not text.isalnum():
                text = _THOUSANDS_SPACES.sub("", text)
            if upper:
                text = text.upper()
            return text if len(text) <= max_length else UNHANDLED

        return fast

    parse.fast_bind = fast_bind
    return parse


def choice_parser(choices: dict[str, str]) -> Parser:
    """Return a parser that maps spellings (matched case-insensitively) to stored values."""
    lookup = {key.lower(): stored for key, stored in choices.items()}

    def parse(value: Any) -> str:
        text = cell_text(value).strip().lower()
        if text not in lookup:
            shown = ", ".join(dict.fromkeys(choices))
            raise CellError(NOT_A_CHOICE, value=cell_text(value), choices=shown)
        return lookup[text]

    def fast_bind() -> Callable[[str], Any]:
        def fast(text: str) -> Any:
            return lookup.get(text.lower(), UNHANDLED)

        return fast

    parse.fast_bind = fast_bind
    return parse


def neutralise(cell: Any) -> str:
    """Return a cell as text that a spreadsheet will not run as a formula.

    A leading = + - @ tab or CR gets a ' in front (the library's own escape is not
    enough: it leaves ``==1+1``, ``+1`` and ``@SUM(1)`` live).
    """
    text = cell_text(cell)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


__all__ = [
    "UNHANDLED", "CellError", "ImportFileError", "Limits", "SourceRow", "Table", "cell_clean",
    "cell_parse", "cell_text", "choice_parser", "date_parser", "datetime_parser",
    "decimal_parser", "integer_parser", "limits_get", "neutralise", "parse_bool",
    "parse_decimal", "parse_phone", "parser_fast", "table_open", "text_parser",
]
