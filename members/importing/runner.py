"""Run an import job: the preview that writes nothing, then the import itself.

The preview parses and checks every row and counts what the import would do. The
import is all-or-nothing by default: one transaction, and any error rolls everything
back and rejects the job with its errors. With ``skip_bad_rows`` the rows are written
in batches, each committed with a checkpoint (``rows_done`` and the counts so far),
and the refused rows go to a CSV file of their own with the reason of each.

Running twice is safe: every record carries its own key (card number, store and
receipt, voucher code, ``opening:<card>``), so a row already in the database is
"unchanged" and nothing is written twice; a worker that dies mid-import leaves
either nothing (all-or-nothing) or whole batches plus their checkpoint, from which
the next run continues. A PostgreSQL advisory lock keeps two workers off one job.
"""

from __future__ import annotations

# The progress UPDATE names the job table from the model; every value is a parameter.
# ruff: noqa: S608
import csv
import gc
import io
import logging
import operator
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.core.files import File
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from members.importing.files import (
    UNHANDLED,
    VALUE_REQUIRED,
    CellError,
    ImportFileError,
    SourceRow,
    Table,
    cell_clean,
    neutralise,
    parser_fast,
    table_open,
)
from members.importing.reading import batches_read_ahead
from members.importing.registry import (
    DUPLICATE_IN_FILE,
    ERROR,
    NEW,
    OUTCOMES,
    UNCHANGED,
    UPDATED,
    ImportKind,
    Record,
    RowError,
    header_normalise,
    kind_get,
)
from members.models import ImportJob

logger = logging.getLogger(__name__)

# Rows checked (and written) per batch: one lookup query per batch and kind of lookup.
BATCH_ROWS = 500
# How often the progress bar moves (rows).
PROGRESS_EVERY = 2000
# How many errors a job keeps to show; the counts cover all of them.
ERRORS_KEPT = 1000
# pg_try_advisory_lock(class, id): the class keeps import locks apart from others.
_LOCK_CLASS = 0x494D  # "IM"

KIND_UNKNOWN = _("There is no import of kind “%(kind)s”.")
COLUMN_MISSING = _(
    "The required column “%(column)s” is missing. It may also be called: %(names)s. "
    "The columns in the file are: %(found)s."
)
COLUMN_TWICE = _(
    "The columns “%(first)s” and “%(second)s” both mean “%(column)s”; keep only one."
)
COLUMNS_IGNORED = _("These columns are not used and were ignored: %(columns)s.")
SAME_RECORD = _("Not imported because row %(row)s of the same %(record)s has an error.")
NOTHING_IMPORTED = _(
    "Nothing was imported: %(count)s rows have errors. Correct them and upload the file "
    "again, or upload it with “skip bad rows”."
)
CANCELLED = _("Cancelled by %(user)s; nothing was imported.")
FAILED_ALL_OR_NOTHING = _(
    "The import stopped on an unexpected error and nothing was imported. Try again "
    "later or ask an administrator (job %(job)s)."
)
FAILED_PREVIEW = _(
    "The check of the file stopped on an unexpected error. Try again later or ask an "
    "administrator (job %(job)s)."
)
FAILED_PARTIAL = _(
    "The import stopped on an unexpected error after %(rows)s rows; the rows before "
    "were imported. Ask an administrator (job %(job)s)."
)
ROW_HEADER = _("row")
REASON_HEADER = _("reason")


# ------------------------------------------------------------------ columns


@dataclass
class ColumnMap:
    """Where each known column is in the file, and what the file calls it."""

    index: dict[str, int]
    headers: dict[str, str]
    ignored: list[str]


def columns_map(kind: type[ImportKind], header: list[str]) -> ColumnMap:
    """Match a file's header to the kind's columns (any language, any case or spacing).

    Raise :class:`ImportFileError` naming the first required column that is missing,
    or two columns of the file that mean the same thing.
    """
    names = {column.key: column.names() for column in kind.columns}
    index: dict[str, int] = {}
    headers: dict[str, str] = {}
    ignored: list[str] = []
    for position, text in enumerate(header):
        normal = header_normalise(text)
        if not normal:
            continue
        key = next((key for key, accepted in names.items() if normal in accepted), None)
        if key is None:
            ignored.append(text)
            continue
        if key in index:
            raise ImportFileError(
                COLUMN_TWICE, first=headers[key], second=text,
                column=str(kind.column(key).label),
            )
        index[key], headers[key] = position, text
    for column in kind.columns:
        if column.required and column.key not in index:
            raise ImportFileError(
                COLUMN_MISSING, column=str(column.label),
                names=", ".join(sorted(names[column.key] - {header_normalise(column.label)})),
                found=", ".join(f"“{text}”" for text in header if text.strip()) or "—",
            )
    return ColumnMap(index=index, headers=headers, ignored=ignored)


RowParse = Callable[[SourceRow], tuple[dict, list[RowError]]]


def _row_parser(kind: type[ImportKind], cmap: ColumnMap) -> RowParse:
    """Return a function giving a row's values by column key and the errors of its
    cells, compiled once for this file.

    What it does per row is what it always did per column of the kind: a blank or
    missing cell is None (refused when required), any other cell goes through
    :func:`cell_clean` and the column's parser. Compiled: the kind's columns that the
    file lacks are left out (None; required ones are refused by :func:`columns_map`
    before any row), each column's position, parser and the parser's fast path
    (:func:`~members.importing.files.parser_fast`, one per file) sit in one tuple, and
    a cell without a non-breaking space or a leading ' is cleaned by ``strip`` alone.
    """
    template = dict.fromkeys(column.key for column in kind.columns)
    absent = sys.maxsize  # a position no row reaches: the cell is missing on every row
    specs = tuple(
        (column.key, cmap.index.get(column.key, absent), column.parser,
         parser_fast(column.parser), column.required)
        for column in kind.columns
        if column.key in cmap.index or column.required
    )

    def parse(row: SourceRow) -> tuple[dict, list[RowError]]:
        cells = row.cells
        width = len(cells)
        values = template.copy()
        errors: list[RowError] = []
        for key, position, parser, fast, required in specs:
            value = cells[position] if position < width else None
            if value.__class__ is str:
                value = value.strip()
                if not value:
                    value = None
                else:
                    if value[0] == "'" or "\u00a0" in value:
                        value = cell_clean(value)  # the same as on the cell before strip()
                    if value is not None and fast is not None:
                        parsed = fast(value)  # never raises
                        if parsed is not UNHANDLED:
                            values[key] = parsed
                            continue
            elif value is not None:
                value = cell_clean(value)
            if value is None:
                if required:
                    errors.append(RowError(row.number, key, str(VALUE_REQUIRED)))
                continue
            try:
                values[key] = parser(value)
            except CellError as error:
                errors.append(RowError(row.number, key, str(error)))
        return values, errors

    return parse


def _row_parse(kind: type[ImportKind], cmap: ColumnMap, row: SourceRow):
    """Return a row's values by column key and the errors of its cells (one row; a
    whole file goes through :func:`_row_parser`, compiled once)."""
    return _row_parser(kind, cmap)(row)


def _group_getter(kind: type[ImportKind]) -> Callable[[dict], tuple] | None:
    """Return what gives a row's group (its values in ``kind.group_by``), or None."""
    group_by = tuple(kind.group_by)
    if not group_by:
        return None
    if len(group_by) > 1 and set(group_by) <= {column.key for column in kind.columns}:
        # Every row's values hold every column's key: itemgetter gives the tuple in C.
        return operator.itemgetter(*group_by)
    return lambda values: tuple(values.get(key) for key in group_by)


def _records(kind: type[ImportKind], cmap: ColumnMap, rows: Iterator[SourceRow]):
    """Yield the file's records: single rows, or consecutive rows of one group."""
    parse = _row_parser(kind, cmap)
    group_of = _group_getter(kind)
    current: Record | None = None
    current_group = None
    for row in rows:
        values, errors = parse(row)
        group = group_of(values) if group_of is not None else None
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


@contextmanager
def _file_batches(kind: ImportKind, cmap: ColumnMap, table: Table):
    """Yield the file's records in batches of the kind's size, read and parsed by a
    second thread while this one checks and writes (:mod:`members.importing.reading`)."""
    with batches_read_ahead(
        _batches(_records(type(kind), cmap, table.rows), kind.batch_rows)
    ) as batches:
        yield batches


def _batches(records: Iterator[Record], rows: int = 0) -> Iterator[list[Record]]:
    batch: list[Record] = []
    size = 0
    for record in records:
        batch.append(record)
        size += len(record.rows)
        if size >= (rows or BATCH_ROWS):
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


# ------------------------------------------------------------------ checking and writing


def _batch_check(kind: ImportKind, batch: list[Record], job, seen: dict[str, int]) -> None:
    """Refuse repeated keys within the file, then let the kind check the batch."""
    key_column = (kind.key_columns or kind.group_by or (kind.columns[0].key,))[0]
    for record in batch:
        record.key = kind.row_key(record) if not record.errors else ""
        if not record.key:
            continue
        first = seen.get(record.key)
        if first is None:
            seen[record.key] = record.first_row
        else:
            record.error(key_column, DUPLICATE_IN_FILE, record=kind.record_name, row=first)
    kind.check(batch, job)
    for record in batch:
        if record.errors:
            record.outcome = ERROR


def _batch_apply(kind: ImportKind, batch: list[Record], job) -> None:
    writable = [r for r in batch if not r.errors and r.outcome in (NEW, UPDATED)]
    if writable:
        kind.apply(writable, job)
    for record in batch:
        if record.errors:
            record.outcome = ERROR


@dataclass
class Tally:
    """Counts of rows by outcome and the first errors, as the job stores them."""

    headers: dict[str, str]
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    errors: list[dict] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def add(self, record: Record) -> None:
        outcome = ERROR if record.errors else (record.outcome or UNCHANGED)
        self.counts[outcome] += len(record.rows)
        for error in record.errors:
            if len(self.errors) >= ERRORS_KEPT:
                break
            self.errors.append({
                "row": error.row,
                "column": self.headers.get(error.column, ""),
                "message": error.message,
            })


class _RejectedFile:
    """The refused rows as they were, plus their row number and reason (CSV, UTF-8 BOM).

    Cells are neutralised so a spreadsheet never runs them as formulas; the extra
    columns are unknown to the import, so the file can be corrected and uploaded again.
    """

    def __init__(self, table: Table, kind: type[ImportKind]):
        self.kind = kind
        self.rows = 0
        self._binary = tempfile.TemporaryFile()  # noqa: SIM115 - closed in save()
        self._text = io.TextIOWrapper(self._binary, encoding="utf-8-sig", newline="")
        self._writer = csv.writer(self._text, delimiter=table.delimiter or ",")
        self._width = len(table.header)
        self._writer.writerow(
            [neutralise(cell) for cell in table.header] + [gettext(ROW_HEADER),
                                                           gettext(REASON_HEADER)]
        )

    def add(self, record: Record) -> None:
        by_row: dict[int, list[str]] = {}
        for error in record.errors:
            by_row.setdefault(error.row, []).append(error.message)
        first_bad = min(by_row) if by_row else record.first_row
        for row in record.rows:
            reasons = by_row.get(row.number) or [
                gettext(SAME_RECORD) % {"row": first_bad, "record": self.kind.record_name}
            ]
            cells = list(row.cells) + [None] * (self._width - len(row.cells))
            self._writer.writerow(
                [neutralise(cell) for cell in cells] + [row.number, "; ".join(reasons)]
            )
            self.rows += 1

    def discard(self) -> None:
        self._text.detach()
        self._binary.close()

    def save(self, job: ImportJob) -> str:
        """Store the file on the job's ``rejected_file`` and return its name ("" if none)."""
        self._text.flush()
        self._text.detach()
        try:
            if not self.rows:
                return ""
            self._binary.seek(0)
            # An unguessable name, should the media directory ever be served.
            job.rejected_file.save(
                f"rejected-{job.pk}-{uuid.uuid4().hex}.csv", File(self._binary), save=False
            )
            return job.rejected_file.name
        finally:
            self._binary.close()


# ------------------------------------------------------------------ job plumbing


class _Progress:
    """Move the job's progress bar every ``PROGRESS_EVERY`` rows.

    Inside the all-or-nothing transaction an UPDATE of the job would stay invisible
    until the end, so on PostgreSQL it goes through a second, autocommit connection.
    The main transaction never touches the job row before its final UPDATE, so the two
    cannot wait on each other. SQLite (the embedded default) allows one writer only:
    there the bar moves only outside a transaction.
    """

    def __init__(self, job_id: int, *, separate_connection: bool):
        self.job_id = job_id
        self.separate = separate_connection
        self._connection = None
        self._last = 0

    def __call__(self, rows_done: int, *, force: bool = False) -> None:
        if not force and rows_done - self._last < PROGRESS_EVERY:
            return
        self._last = rows_done
        if not self.separate:
            ImportJob.objects.filter(pk=self.job_id).update(rows_done=rows_done)
            return
        if connection.vendor != "postgresql":
            return
        if self._connection is None:
            self._connection = connections.create_connection(DEFAULT_DB_ALIAS)
        with self._connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {ImportJob._meta.db_table} SET rows_done = %s WHERE id = %s",
                [rows_done, self.job_id],
            )

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


@contextmanager
def _job_file(job: ImportJob):
    with job.file.open("rb") as source:
        yield source


@contextmanager
def _collections_spaced():
    """Let Python's garbage collector run less often while a file is read and written.

    An import allocates millions of small objects that live until their batch is
    written; at the default thresholds the collector keeps walking the batches held in
    memory (about a tenth of a large import's CPU). The previous thresholds come back
    afterwards: the worker process goes on as before.
    """
    previous = gc.get_threshold()
    gc.set_threshold(20_000, 20, 50)
    try:
        yield
    finally:
        gc.set_threshold(*previous)


@contextmanager
def _run_lock(job_id: int):
    """Yield whether this process may run the job now (PostgreSQL advisory lock).

    A session lock: a worker that dies loses its connection and with it the lock.
    """
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_CLASS, job_id % 2**31])
        locked = cursor.fetchone()[0]
    try:
        yield locked
    finally:
        if locked:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_unlock(%s, %s)", [_LOCK_CLASS, job_id % 2**31]
                )


def _job_update(job: ImportJob, *, only_if: tuple[str, ...] = (), **fields) -> bool:
    """Update the job's row (only while its status is one of ``only_if``) and ``job``."""
    rows = ImportJob.objects.filter(pk=job.pk)
    if only_if:
        rows = rows.filter(status__in=only_if)
    updated = rows.update(**fields)
    job.refresh_from_db()
    return bool(updated)


def _kind_open(job: ImportJob, table: Table) -> tuple[ImportKind, ColumnMap]:
    kind_class = kind_get(job.kind)
    if kind_class is None:
        raise ImportFileError(KIND_UNKNOWN, kind=job.kind)
    cmap = columns_map(kind_class, table.header)
    kind = kind_class()
    kind.start(job)
    return kind, cmap


# ------------------------------------------------------------------ preview


def import_job_preview(job: ImportJob) -> ImportJob:
    """Check every row of the job's file without writing, and store what an import
    would do: counts of new, updated, unchanged and error rows, and the first errors.

    The job ends ``previewed``, or ``rejected`` with a message when the file as a
    whole cannot be imported (encoding, size, a missing column). Return the job.
    """
    started = _job_update(
        job,
        only_if=(ImportJob.Status.UPLOADED, ImportJob.Status.PREVIEWING,
                 ImportJob.Status.PREVIEWED),
        status=ImportJob.Status.PREVIEWING, rows_done=0, counts={}, errors=[], message="",
    )
    if not started:  # cancelled, importing or finished meanwhile
        return job
    progress = _Progress(job.pk, separate_connection=False)
    try:
        with _job_file(job) as source, _collections_spaced():
            table = table_open(source)
            kind, cmap = _kind_open(job, table)
            tally = Tally(headers=cmap.headers)
            seen: dict[str, int] = {}
            with _file_batches(kind, cmap, table) as batches:
                for batch in batches:
                    _batch_check(kind, batch, job, seen)
                    for record in batch:
                        tally.add(record)
                    progress(tally.rows)
    except ImportFileError as error:
        _job_update(
            job, only_if=(ImportJob.Status.PREVIEWING,), status=ImportJob.Status.REJECTED,
            message=str(error), finished_at=timezone.now(),
        )
        return job
    message = ""
    if cmap.ignored:
        message = gettext(COLUMNS_IGNORED) % {
            "columns": ", ".join(f"“{text}”" for text in cmap.ignored)
        }
    _job_update(
        job, only_if=(ImportJob.Status.PREVIEWING,), status=ImportJob.Status.PREVIEWED,
        rows_total=tally.rows, rows_done=tally.rows, counts=tally.counts,
        errors=tally.errors, message=message,
    )
    return job


def import_job_confirm(job: ImportJob) -> bool:
    """Mark a previewed job to be imported; False if it is not waiting for that."""
    return _job_update(
        job, only_if=(ImportJob.Status.PREVIEWED,), status=ImportJob.Status.IMPORTING,
        rows_done=0, counts={}, errors=[],
    )


def import_job_cancel(job: ImportJob, *, actor) -> bool:
    """Cancel a job before its import starts; False once it has started or ended."""
    return _job_update(
        job,
        only_if=(ImportJob.Status.UPLOADED, ImportJob.Status.PREVIEWING,
                 ImportJob.Status.PREVIEWED),
        status=ImportJob.Status.REJECTED,
        message=gettext(CANCELLED) % {"user": actor.get_username()},
        finished_at=timezone.now(),
    )


# ------------------------------------------------------------------ import


class _Rollback(Exception):
    """Some row failed in an all-or-nothing import: undo everything."""


def import_job_apply(job: ImportJob) -> ImportJob:
    """Import the job's file through the kind's services; return the job.

    All-or-nothing unless ``job.skip_bad_rows``. A job already imported, rejected or
    failed is left alone; a job found ``importing`` is one whose worker died: an
    all-or-nothing import starts again (nothing of it was committed), a batched one
    continues after its checkpoint. Another worker running the same job makes this
    call return at once.
    """
    finished = (ImportJob.Status.DONE, ImportJob.Status.REJECTED, ImportJob.Status.FAILED)
    with _run_lock(job.pk) as locked:
        job.refresh_from_db()
        if not locked or job.status in finished:
            return job
        resuming = job.status == ImportJob.Status.IMPORTING and job.skip_bad_rows
        resume_rows = job.rows_done if resuming else 0
        if not resume_rows:
            _job_update(
                job, status=ImportJob.Status.IMPORTING, rows_done=0, counts={}, errors=[],
                message="",
            )
        try:
            with _job_file(job) as source, _collections_spaced():
                table = table_open(source)
                kind, cmap = _kind_open(job, table)
                if job.skip_bad_rows:
                    _apply_in_batches(job, kind, cmap, table, resume_rows=resume_rows)
                else:
                    _apply_all_or_nothing(job, kind, cmap, table)
        except ImportFileError as error:
            job.refresh_from_db()
            # Batches already committed stay: then the job failed, it was not rejected.
            partial = job.skip_bad_rows and job.rows_done > 0
            _job_update(
                job,
                status=ImportJob.Status.FAILED if partial else ImportJob.Status.REJECTED,
                message=str(error), finished_at=timezone.now(),
            )
    return job


def import_job_fail(job: ImportJob) -> None:
    """Mark a job failed after an unexpected error (the task logs the error itself)."""
    job.refresh_from_db()
    if job.status in (ImportJob.Status.UPLOADED, ImportJob.Status.PREVIEWING):
        message = gettext(FAILED_PREVIEW) % {"job": job.pk}
    elif job.skip_bad_rows and job.status == ImportJob.Status.IMPORTING:
        message = gettext(FAILED_PARTIAL) % {"rows": job.rows_done, "job": job.pk}
    else:
        message = gettext(FAILED_ALL_OR_NOTHING) % {"job": job.pk}
    _job_update(
        job, only_if=(ImportJob.Status.IMPORTING, ImportJob.Status.PREVIEWING,
                      ImportJob.Status.UPLOADED),
        status=ImportJob.Status.FAILED, message=message, finished_at=timezone.now(),
    )


def _apply_all_or_nothing(job: ImportJob, kind: ImportKind, cmap: ColumnMap, table: Table):
    tally = Tally(headers=cmap.headers)
    seen: dict[str, int] = {}
    progress = _Progress(job.pk, separate_connection=True)
    try:
        with transaction.atomic():
            failed = False
            with _file_batches(kind, cmap, table) as batches:
                for batch in batches:
                    _batch_check(kind, batch, job, seen)
                    if not failed:
                        _batch_apply(kind, batch, job)
                    for record in batch:
                        tally.add(record)
                    failed = tally.counts[ERROR] > 0
                    progress(tally.rows)
            if failed:
                raise _Rollback
            # The job row is locked only now, after the last progress update.
            ImportJob.objects.filter(pk=job.pk).update(
                status=ImportJob.Status.DONE, rows_done=tally.rows, rows_total=tally.rows,
                counts=tally.counts, errors=[], finished_at=timezone.now(),
            )
    except _Rollback:
        _job_update(
            job, status=ImportJob.Status.REJECTED, rows_done=tally.rows,
            counts=tally.counts, errors=tally.errors, finished_at=timezone.now(),
            message=gettext(NOTHING_IMPORTED) % {"count": tally.counts[ERROR]},
        )
    finally:
        progress.close()
    job.refresh_from_db()


def _apply_in_batches(
    job: ImportJob, kind: ImportKind, cmap: ColumnMap, table: Table, *, resume_rows: int
):
    """Write batch by batch, each committed with its checkpoint; refused rows to a file.

    Records before ``resume_rows`` were committed by a worker that died: they run
    again (finding themselves unchanged, so nothing is written twice) only to rebuild
    the rejected file, and the counts come from the checkpoint.
    """
    tally = Tally(headers=cmap.headers)
    if resume_rows:
        tally.counts.update({key: job.counts.get(key, 0) for key in OUTCOMES})
        tally.errors = list(job.errors)
    seen: dict[str, int] = {}
    rejected = _RejectedFile(table, type(kind))
    processed = 0
    try:
        with _file_batches(kind, cmap, table) as batches:
            for batch in batches:
                with transaction.atomic():
                    _batch_check(kind, batch, job, seen)
                    _batch_apply(kind, batch, job)
                    for record in batch:
                        if processed >= resume_rows:
                            tally.add(record)
                        processed += len(record.rows)
                    if processed > resume_rows:
                        # The checkpoint commits with the rows it counts.
                        ImportJob.objects.filter(pk=job.pk).update(
                            rows_done=processed, counts=tally.counts, errors=tally.errors,
                        )
                for record in batch:
                    if record.errors:
                        rejected.add(record)
    except BaseException:
        rejected.discard()
        raise
    rejected_name = rejected.save(job)
    _job_update(
        job, status=ImportJob.Status.DONE, rows_done=processed, rows_total=processed,
        counts=tally.counts, errors=tally.errors, rejected_file=rejected_name,
        finished_at=timezone.now(),
    )


__all__ = [
    "BATCH_ROWS", "ColumnMap", "Tally", "columns_map", "import_job_apply",
    "import_job_cancel", "import_job_confirm", "import_job_fail", "import_job_preview",
]
