"""Exports of admin lists to CSV and XLSX: as filtered on screen, safe to open, logged.

The columns of each list are a django-import-export resource
(:class:`ExportResource`, declared in each app's ``resources.py``); the rows are the
admin's own ChangeList queryset, so an export holds exactly what the list shows.

- Every text cell that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``,
  tab, carriage return first) is prefixed with ``'``; numbers stay numbers.
- Users without ``members.export_personal_data`` get no names, contact data or card
  numbers: those columns are dropped and a stable pseudonymous member key is added.
- Up to :func:`stream_max_rows` rows stream in the response; more run as a background
  :class:`~members.models.ExportJob` (Celery) with a progress page. On PostgreSQL a
  background CSV is PostgreSQL's own ``COPY ... TO STDOUT`` of the list's query with the
  escaping done in SQL, written to a file as it arrives, so memory stays constant.
- The CSV is UTF-8 with a byte-order mark (so Excel reads Cyrillic), comma-separated,
  ``\\n``-terminated and quoted exactly as PostgreSQL's CSV output, whichever path
  wrote it; times are in the programme's time zone (``TIME_ZONE``).
- Every export, streamed or not, is an ExportJob row: who, what, which filters, how many.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import hmac
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery import shared_task
from django.apps import apps
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.admin.options import IS_POPUP_VAR, TO_FIELD_VAR, IncorrectLookupParameters
from django.contrib.admin.views.main import ERROR_FLAG, PAGE_VAR
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import connections, models, transaction
from django.db.models import F, Func, QuerySet
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
    QueryDict,
    StreamingHttpResponse,
)
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.module_loading import autodiscover_modules
from django.utils.text import capfirst
from django.utils.translation import gettext
from import_export import resources

from members.broker_health import task_submit
from members.models import ExportJob

logger = logging.getLogger(__name__)

# ------------------------------------------------------------------ constants

PERSONAL_DATA_PERMISSION = "members.export_personal_data"
# The query-string parameter of the export URL that is ours, not the list's.
FORMAT_PARAM = "format"
# List parameters that never change which rows match (page, popups, error flag).
NOT_FILTERS = (FORMAT_PARAM, PAGE_VAR, ERROR_FLAG, IS_POPUP_VAR, TO_FIELD_VAR)
# Up to this many rows an export streams in the response; above, it is a background job.
STREAM_MAX_ROWS = 20_000
# A background job writes its progress every this many rows.
PROGRESS_EVERY = 5_000
# Rows of data an XLSX sheet holds below its header (Excel's limit is 1,048,576 rows).
XLSX_MAX_ROWS = 1_048_575
# Rows fetched per round trip by the Python writers (server-side cursor on PostgreSQL).
FETCH_ROWS = 2_000
# Lines joined into one chunk of a streamed response.
STREAM_CHUNK_ROWS = 500

# The first characters that make Excel, LibreOffice or Google Sheets run a cell.
FORMULA_TRIGGERS = frozenset("=+-@\t\r")
# The same set as character codes, for PostgreSQL's ascii().
_SQL_FORMULA_CODES = ", ".join(str(ord(char)) for char in sorted(FORMULA_TRIGGERS))
_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
BOM = "\ufeff"
# Characters that openpyxl refuses in a cell (XML 1.0 forbids them).
_XLSX_ILLEGAL = re.compile(r"[\000-\010\013\014\016-\037]")
# PostgreSQL's CSV output quotes a value holding any of these, and empty strings.
_CSV_SPECIAL = re.compile(r'[,"\r\n]')
# Advisory-lock namespace of export jobs: one runner per job at a time.
_LOCK_NAMESPACE = 0x4558  # "EX"

TEXT, NUMBER, BOOLEAN, DATE, DATETIME, KEY = "text", "number", "bool", "date", "datetime", "key"


class ExportError(Exception):
    """An export that cannot run; the message is shown to the person who asked for it."""


def stream_max_rows() -> int:
    """Return how many rows an export may have and still stream in the response."""
    return int(getattr(settings, "LOYALTY_EXPORT_STREAM_MAX_ROWS", STREAM_MAX_ROWS))


# ------------------------------------------------------------------ cells


def cell_neutralise(value: Any) -> Any:
    """Return ``value`` made safe for a spreadsheet cell.

    A string starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return comes back
    prefixed with ``'`` so that it is text, never a formula; anything else (numbers,
    negative ones included, dates, ``None``) comes back unchanged.
    """
    if isinstance(value, str) and value[:1] in FORMULA_TRIGGERS:
        return "'" + value
    return value


@functools.cache
def _hmac_pads(secret: str) -> tuple[bytes, bytes]:
    """Return HMAC-SHA256's inner and outer padded keys for ``secret`` (RFC 2104)."""
    key = secret.encode()
    if len(key) > hashlib.sha256().block_size:
        key = hashlib.sha256(key).digest()
    key = key.ljust(hashlib.sha256().block_size, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def member_key(member_id: int | None) -> str:
    """Return the member's pseudonymous key: HMAC-SHA256 of the id, first 16 hex digits.

    The same member always gets the same key (while ``SECRET_KEY`` stays), so
    pseudonymised exports can be joined; without the key the id cannot be recovered.
    ``None`` (no member) gives an empty string.
    """
    if member_id is None:
        return ""
    digest = hmac.new(settings.SECRET_KEY.encode(), str(member_id).encode(), hashlib.sha256)
    return digest.hexdigest()[:16]


def _csv_field(value: str | None) -> str:
    """Return one CSV field quoted as PostgreSQL's ``COPY ... CSV`` quotes it."""
    if value is None:
        return ""
    if value == "" or _CSV_SPECIAL.search(value):
        return '"' + value.replace('"', '""') + '"'
    return value


def csv_line(values: list[str | None]) -> str:
    """Return one CSV line of already formatted fields, as COPY writes it."""
    if len(values) == 1 and values[0] == "\\.":
        # Alone on its line, \. would read as COPY's end-of-data marker.
        return '"\\."\n'
    return ",".join(_csv_field(value) for value in values) + "\n"


# ------------------------------------------------------------------ columns


class ExportResource(resources.ModelResource):
    """The columns of one admin list's export, declared as an import-export resource.

    ``Meta.fields`` gives the columns in order; a column's header is its field's
    ``column_name`` when declared (``Field(column_name=_("..."))``), else the model
    field's ``verbose_name``, translated when the export runs. Every column must be a
    model field or a ``__`` path to one: exports read values in SQL, not row by row.

    ``personal_fields`` are left out for users without ``members.export_personal_data``;
    ``member_keys`` (path to a member id, header) are then added, first, in their place.
    """

    personal_fields: tuple[str, ...] = ()
    member_keys: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Column:
    """One column of an export: where its value comes from and how it is written."""

    name: str
    path: str
    header: Any
    kind: str


def _model_field(model: type[models.Model], path: str) -> models.Field:
    """Return the model field at the end of ``path`` ("member__card_number", "member_id")."""
    *relations, last = path.split("__")
    opts = model._meta
    for name in relations:
        opts = opts.get_field(name).related_model._meta
    return opts.get_field(last)


def _kind(field: models.Field) -> str:
    if isinstance(field, models.GeneratedField):
        field = field.output_field
    if field.is_relation:
        field = field.target_field
    if isinstance(field, models.BooleanField):
        return BOOLEAN
    if isinstance(field, models.DateTimeField):
        return DATETIME
    if isinstance(field, models.DateField):
        return DATE
    if isinstance(field, models.IntegerField | models.DecimalField | models.FloatField):
        return NUMBER
    return TEXT


def export_columns(
    resource_class: type[ExportResource], *, personal_data: bool
) -> list[Column]:
    """Return the columns of ``resource_class``'s export, in order.

    Without ``personal_data`` the resource's personal fields are dropped and its member
    keys come first.
    """
    resource = resource_class()
    model = resource._meta.model
    columns = []
    if not personal_data:
        columns += [
            Column(name=f"key:{path}", path=path, header=header, kind=KEY)
            for path, header in resource_class.member_keys
        ]
    for field in resource.get_export_fields():
        name = resource.get_field_name(field)
        if not personal_data and name in resource_class.personal_fields:
            continue
        path = field.attribute or name
        model_field = _model_field(model, path)
        # A generated field's column name is its plain name; a declared one is a header.
        declared = field.column_name is not None and (
            not isinstance(field.column_name, str) or field.column_name != name
        )
        header = field.column_name if declared else model_field.verbose_name
        columns.append(Column(name=name, path=path, header=header, kind=_kind(model_field)))
    return columns


def export_headers(columns: list[Column], *, language: str) -> list[str]:
    """Return the column headers in ``language``."""
    with translation.override(language):
        return [capfirst(str(column.header)) for column in columns]


def _all_subclasses(cls: type) -> Iterator[type]:
    for subclass in cls.__subclasses__():
        yield subclass
        yield from _all_subclasses(subclass)


@functools.cache
def _resource_registry() -> dict[type[models.Model], type[ExportResource]]:
    autodiscover_modules("resources")
    registry: dict[type[models.Model], type[ExportResource]] = {}
    for resource_class in _all_subclasses(ExportResource):
        model = resource_class._meta.model
        if model is not None:
            registry.setdefault(model, resource_class)
    return registry


def export_resource_for(model: type[models.Model]) -> type[ExportResource] | None:
    """Return the export resource of ``model`` from the apps' ``resources.py``, or None."""
    return _resource_registry().get(model)


# ------------------------------------------------------------------ permissions


def export_permission(opts) -> str:
    """Return the permission ("app.codename") that lets a user export ``opts``'s list.

    It is ``IMPORT_EXPORT_EXPORT_PERMISSION_CODE`` ("view") of the model; an empty
    setting still means "view", never "anyone".
    """
    action = getattr(settings, "IMPORT_EXPORT_EXPORT_PERMISSION_CODE", None) or "view"
    return f"{opts.app_label}.{get_permission_codename(action, opts)}"


def export_allowed(request: HttpRequest, model_admin: admin.ModelAdmin) -> bool:
    """Return whether the request's user may export ``model_admin``'s list."""
    user = request.user
    return bool(
        user.is_active
        and user.is_staff
        and export_resource_for(model_admin.model) is not None
        and model_admin.has_view_permission(request)
        and user.has_perm(export_permission(model_admin.opts))
    )


# ------------------------------------------------------------------ rows


def _exportable(queryset: QuerySet) -> QuerySet:
    """Return ``queryset`` as one plain SELECT of its rows, in the same order.

    DISTINCT would add the ordering columns to the SELECT list that COPY writes out;
    an ``IN`` over the distinct ids keeps the rows and the order without them.
    """
    if not queryset.query.distinct:
        return queryset
    plain = queryset.model._default_manager.using(queryset.db).filter(
        pk__in=queryset.order_by().values("pk")
    )
    if queryset.query.order_by:
        plain = plain.order_by(*queryset.query.order_by)
    return plain


def _value_rows(queryset: QuerySet, columns: list[Column]) -> Iterator[tuple]:
    """Yield the raw values of ``columns`` for each row, fetched in chunks."""
    paths = list(dict.fromkeys(column.path for column in columns))
    index = [paths.index(column.path) for column in columns]
    rows = _exportable(queryset).values_list(*paths).iterator(chunk_size=FETCH_ROWS)
    for row in rows:
        yield tuple(row[i] for i in index)


def _local(value: datetime) -> datetime:
    """Return ``value`` in the programme's time zone (``TIME_ZONE``), as COPY has it."""
    if timezone.is_naive(value):
        return value
    return timezone.localtime(value, timezone.get_default_timezone())


def _csv_formatter(kind: str) -> Callable[[Any], str | None]:
    """Return the function that writes a value of ``kind`` as COPY writes it."""
    if kind == TEXT:
        return lambda v: None if v is None else cell_neutralise(str(v))
    if kind == BOOLEAN:
        return lambda v: None if v is None else ("true" if v else "false")
    if kind == DATE:
        return lambda v: None if v is None else v.isoformat()
    if kind == DATETIME:
        return lambda v: None if v is None else _local(v).strftime(_DATETIME_FORMAT)
    if kind == KEY:
        return lambda v: None if v is None else member_key(v)
    return lambda v: None if v is None else str(v)


def _xlsx_formatter(kind: str) -> Callable[[Any], Any]:
    """Return the function that turns a value of ``kind`` into an XLSX cell value."""
    if kind == TEXT:
        return lambda v: None if v is None else cell_neutralise(_XLSX_ILLEGAL.sub("", str(v)))
    if kind == DATETIME:
        return lambda v: None if v is None else _local(v).replace(tzinfo=None, microsecond=0)
    if kind == KEY:
        return lambda v: None if v is None else member_key(v)
    return lambda v: v


def csv_lines(queryset: QuerySet, columns: list[Column], headers: list[str]) -> Iterator[str]:
    """Yield the CSV: the header line (with a byte-order mark), then one line per row."""
    yield BOM + csv_line(headers)
    formatters = [_csv_formatter(column.kind) for column in columns]
    for row in _value_rows(queryset, columns):
        yield csv_line([f(value) for f, value in zip(formatters, row, strict=True)])


# ------------------------------------------------------------------ SQL (PostgreSQL COPY)


class _Neutralised(Func):
    """Text made safe for a spreadsheet, in SQL: ``'`` before a formula's first character.

    ``ascii()`` of the first character against the six codes does what the regular
    expression ``^[=+@\\t\\r-]`` does for half the server's CPU time.
    """

    output_field = models.TextField()

    def as_sql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return (
            f"CASE WHEN ascii(({sql})::text) IN ({_SQL_FORMULA_CODES}) "
            f"THEN '''' || ({sql})::text ELSE ({sql})::text END",
            [*params, *params, *params],
        )


class _LocalDatetime(Func):
    """A timestamp to the second in the session's time zone (the programme's: see COPY)."""

    output_field = models.TextField()

    def as_sql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"date_trunc('second', ({sql})::timestamp)", params


class _BooleanText(Func):
    output_field = models.TextField()

    def as_sql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"({sql})::text", params


class _MemberKey(Func):
    """:func:`member_key` in SQL: HMAC-SHA256 from PostgreSQL's built-in ``sha256``."""

    output_field = models.TextField()

    def as_sql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        inner, outer = _hmac_pads(settings.SECRET_KEY)
        return (
            "encode(substring(sha256(%s::bytea || sha256(%s::bytea || "
            f"convert_to(({sql})::text, 'UTF8'))) FROM 1 FOR 8), 'hex')",
            [outer, inner, *params],
        )


# Numbers and dates go out as they are: COPY runs with DateStyle ISO.
_SQL_EXPRESSIONS = {
    TEXT: _Neutralised,
    DATETIME: _LocalDatetime,
    BOOLEAN: _BooleanText,
    KEY: _MemberKey,
}


def _copy_settings(columns: list[Column]) -> dict[str, str]:
    """Return the server settings of the COPY's transaction.

    Times in the programme's zone and ISO dates, as the Python writer writes them. With
    member keys, HMAC-SHA256 is most of the server's work (about 1.6 s of CPU per million
    rows): parallel workers share it, so the planner is told they come for free.
    """
    values = {"TimeZone": settings.TIME_ZONE, "DateStyle": "ISO, YMD"}
    if any(column.kind == KEY for column in columns):
        values.update(parallel_setup_cost="0", parallel_tuple_cost="0")
    return values


def _set_config(cursor, values: dict[str, str]) -> None:
    """Set server settings until the end of the current transaction."""
    for name, value in values.items():
        cursor.execute("SELECT set_config(%s, %s, true)", [name, value])


def copy_sql(queryset: QuerySet, columns: list[Column]) -> tuple[str, list]:
    """Return the ``COPY (SELECT ...) TO STDOUT`` statement of the export and its params.

    The SELECT is the queryset's own (filters, search, joins, ordering) with only the
    export columns, each already written as the CSV cell it becomes.
    """
    aliases = {}
    for number, column in enumerate(columns):
        expression = _SQL_EXPRESSIONS.get(column.kind)
        aliases[f"export_c{number}"] = expression(F(column.path)) if expression else F(
            column.path
        )
    values = _exportable(queryset).annotate(**aliases).values_list(*aliases)
    sql, params = values.query.sql_with_params()
    return f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER false)", list(params)


def _copy_csv(
    queryset: QuerySet, columns: list[Column], out, progress: Callable[[int], None]
) -> int:
    """Write the rows as CSV through PostgreSQL's COPY; return how many were written."""
    import psycopg

    statement, params = copy_sql(queryset, columns)
    connection = connections[queryset.db]
    rows = 0
    with transaction.atomic(using=queryset.db):
        # A client-side binding cursor: COPY takes no server-side parameters.
        with psycopg.ClientCursor(connection.connection) as cursor:
            wanted = _copy_settings(columns)
            saved = {}
            for name in wanted:
                cursor.execute("SELECT current_setting(%s)", [name])
                saved[name] = cursor.fetchone()[0]
            _set_config(cursor, wanted)
            with cursor.copy(statement, params) as copy_out:
                write = out.write
                # PostgreSQL sends each row of COPY TO as one message.
                for data in copy_out:
                    write(data)
                    rows += 1
                    if rows % PROGRESS_EVERY == 0:
                        progress(rows)
            # Put them back for whatever else the transaction (a test's) goes on to do.
            _set_config(cursor, saved)
    return rows


# ------------------------------------------------------------------ files


def _write_csv(queryset, columns, headers, out, progress) -> int:
    """Write the CSV to the binary file ``out``; return the rows written."""
    use_copy = connections[queryset.db].vendor == "postgresql"
    if use_copy:
        out.write((BOM + csv_line(headers)).encode())
        return _copy_csv(queryset, columns, out, progress)
    rows = -1
    for rows, line in enumerate(csv_lines(queryset, columns, headers)):
        out.write(line.encode())
        if rows and rows % PROGRESS_EVERY == 0:
            progress(rows)
    return rows


def _sheet_title(model: type[models.Model]) -> str:
    title = re.sub(r"[\[\]:*?/\\]", " ", str(capfirst(model._meta.verbose_name_plural)))
    return title[:31] or "Export"


def _write_xlsx(queryset, columns, headers, out, progress) -> int:
    """Write an XLSX workbook (write-only: rows go to disk as they come); return the rows."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(_sheet_title(queryset.model))
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    header_cells = []
    for header in headers:
        cell = WriteOnlyCell(sheet, value=cell_neutralise(header))
        cell.font = bold
        header_cells.append(cell)
    sheet.append(header_cells)
    formatters = [_xlsx_formatter(column.kind) for column in columns]
    rows = 0
    for row in _value_rows(queryset, columns):
        rows += 1
        if rows > XLSX_MAX_ROWS:
            raise ExportError(gettext(
                "An XLSX sheet holds at most %(limit)s rows; this list has more. "
                "Export it as CSV, or narrow the filters."
            ) % {"limit": f"{XLSX_MAX_ROWS:,}"})
        sheet.append([f(value) for f, value in zip(formatters, row, strict=True)])
        if rows % PROGRESS_EVERY == 0:
            progress(rows)
    workbook.save(out)
    return rows


_WRITERS = {ExportJob.Format.CSV: _write_csv, ExportJob.Format.XLSX: _write_xlsx}
_CONTENT_TYPES = {
    ExportJob.Format.CSV: "text/csv; charset=utf-8",
    ExportJob.Format.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def export_filename(job: ExportJob) -> str:
    """Return the download's file name, e.g. ``members-member-20260105-0930.csv``."""
    stamp = timezone.localtime(job.created_at).strftime("%Y%m%d-%H%M")
    return f"{job.source.replace('.', '-')}-{stamp}.{job.file_format}"


class _MovableFile(File):
    """A finished temporary file that a file-system storage moves instead of copying."""

    def temporary_file_path(self) -> str:
        return self.file.name


# ------------------------------------------------------------------ requests


def _list_request(request: HttpRequest) -> HttpRequest:
    """Return a copy of ``request`` whose query string is only the list's filters."""
    params = request.GET.copy()
    for name in NOT_FILTERS:
        params.pop(name, None)
    screen = copy.copy(request)
    screen.GET = params
    screen.META = {**request.META, "QUERY_STRING": params.urlencode()}
    return screen


def _replayed_request(job: ExportJob, model_admin: admin.ModelAdmin) -> HttpRequest:
    """Return the list request that ``job`` was asked from, as its user (for a worker)."""
    opts = model_admin.opts
    request = HttpRequest()
    request.method = "GET"
    request.path = request.path_info = reverse(
        f"{model_admin.admin_site.name}:{opts.app_label}_{opts.model_name}_changelist"
    )
    request.META = {"QUERY_STRING": job.query, "SERVER_NAME": "localhost", "SERVER_PORT": "80"}
    request.GET = QueryDict(job.query)
    request.user = job.user
    request.LANGUAGE_CODE = job.language
    return request


def list_queryset(model_admin: admin.ModelAdmin, request: HttpRequest) -> QuerySet:
    """Return the rows of ``model_admin``'s list exactly as filtered and searched in ``request``.

    It is the admin's own ChangeList (filters, search, ordering, the admin's
    ``get_queryset``), so an export can hold neither more nor less than the screen.
    Raises ``IncorrectLookupParameters`` for filters the list would refuse.
    """
    changelist = model_admin.get_changelist_instance(request)
    return changelist.get_queryset(request)


# ------------------------------------------------------------------ the export view


def export_view(request: HttpRequest, *, model_admin: admin.ModelAdmin) -> HttpResponse:
    """Export ``model_admin``'s list as on screen (``?format=csv`` or ``xlsx``).

    Small exports stream at once; larger ones become a background job and the user is
    sent to its progress page. Either way an ExportJob row records the export.
    """
    if not export_allowed(request, model_admin):
        raise PermissionDenied
    file_format = request.GET.get(FORMAT_PARAM, ExportJob.Format.CSV)
    if file_format not in ExportJob.Format.values:
        return HttpResponseBadRequest(gettext("Unknown export format."))
    list_request = _list_request(request)
    try:
        queryset = list_queryset(model_admin, list_request)
    except IncorrectLookupParameters:
        return HttpResponseBadRequest(gettext("These filters cannot be exported."))

    opts = model_admin.opts
    limit = stream_max_rows()
    counted = queryset.order_by()[: limit + 1].count()
    small = counted <= limit
    job = ExportJob.objects.create(
        user=request.user,
        source=f"{opts.app_label}.{opts.model_name}",
        query=list_request.GET.urlencode(),
        file_format=file_format,
        personal_data=request.user.has_perm(PERSONAL_DATA_PERMISSION),
        language=translation.get_language() or settings.LANGUAGE_CODE,
        status=ExportJob.Status.RUNNING if small else ExportJob.Status.QUEUED,
        rows_total=counted if small else None,
    )
    if small:
        return _respond_now(job, queryset)
    # task_submit: with the broker down the job stays queued and is sent again later.
    transaction.on_commit(functools.partial(task_submit, export_job_run, job.pk))
    messages.info(request, gettext(
        "The list has more than %(limit)s rows: it is exported in the background. "
        "This page shows the progress and the download link."
    ) % {"limit": f"{limit:,}"})
    return HttpResponseRedirect(reverse(
        f"{model_admin.admin_site.name}:members_exportjob_progress", args=[job.pk]
    ))


def _job_finish(job_id: int, *, rows: int, error: str = "") -> None:
    ExportJob.objects.filter(pk=job_id).update(
        status=ExportJob.Status.FAILED if error else ExportJob.Status.DONE,
        rows_done=rows, rows_total=rows, error=error, finished_at=timezone.now(),
    )


def _respond_now(job: ExportJob, queryset: QuerySet) -> HttpResponse:
    """Return the export of a small list in the response itself."""
    columns = export_columns(
        export_resource_for(queryset.model), personal_data=job.personal_data
    )
    headers = export_headers(columns, language=job.language)
    filename = export_filename(job)
    if job.file_format == ExportJob.Format.XLSX:
        out = tempfile.TemporaryFile()
        try:
            rows = _write_xlsx(queryset, columns, headers, out, progress=lambda rows: None)
        except Exception:
            out.close()
            _job_finish(job.pk, rows=0, error=gettext("The export failed; the error was logged."))
            raise
        _job_finish(job.pk, rows=rows)
        out.seek(0)
        return FileResponse(
            out, as_attachment=True, filename=filename,
            content_type=_CONTENT_TYPES[ExportJob.Format.XLSX],
        )

    def content() -> Iterator[str]:
        lines, chunk, finished = 0, [], False
        try:
            for line in csv_lines(queryset, columns, headers):
                lines += 1
                chunk.append(line)
                if len(chunk) >= STREAM_CHUNK_ROWS:
                    yield "".join(chunk)
                    chunk.clear()
            yield "".join(chunk)
            finished = True
        finally:
            # A download stopped half-way is logged as such, with the rows sent so far.
            _job_finish(job.pk, rows=max(lines - 1, 0), error="" if finished else gettext(
                "The download was interrupted."
            ))

    response = StreamingHttpResponse(content(), content_type=_CONTENT_TYPES[job.file_format])
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# ------------------------------------------------------------------ the background job


@contextmanager
def _job_lock(job_id: int) -> Iterator[bool]:
    """Hold PostgreSQL's advisory lock of the job while it runs; yield whether we got it.

    A job delivered twice at the same time runs once; the lock goes with the worker's
    connection if the worker dies, so a redelivery after a crash runs it again.
    """
    connection = connections[ExportJob.objects.db]
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_NAMESPACE, job_id])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCK_NAMESPACE, job_id])


class _Progress:
    """Writes a running job's ``rows_done``; on its own connection while COPY holds the main one."""

    def __init__(self, job_id: int, *, separate_connection: bool):
        self.job_id = job_id
        self.separate = separate_connection
        self._connection = None

    def __call__(self, rows: int) -> None:
        if not self.separate:
            ExportJob.objects.filter(pk=self.job_id).update(rows_done=rows)
            return
        if self._connection is None:
            self._connection = connections.create_connection(ExportJob.objects.db)
        # The table name is the model's, never user input.
        table = ExportJob._meta.db_table
        statement = f"UPDATE {table} SET rows_done = %s WHERE id = %s"  # noqa: S608
        with self._connection.cursor() as cursor:
            cursor.execute(statement, [rows, self.job_id])

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


def export_job_execute(*, job_id: int) -> int:
    """Run the export job ``job_id`` and return the rows it wrote.

    A job already done or failed is left alone (a second delivery does nothing); one
    that another worker is running now is skipped. Failures are recorded on the job.
    """
    job = ExportJob.objects.select_related("user").filter(pk=job_id).first()
    if job is None or job.status in (ExportJob.Status.DONE, ExportJob.Status.FAILED):
        return job.rows_done if job else 0
    with _job_lock(job_id) as acquired:
        if not acquired:
            return 0
        job.refresh_from_db()
        if job.status in (ExportJob.Status.DONE, ExportJob.Status.FAILED):
            return job.rows_done
        ExportJob.objects.filter(pk=job_id).update(
            status=ExportJob.Status.RUNNING, rows_done=0, error=""
        )
        try:
            with translation.override(job.language):
                return _job_write(job)
        except ExportError as refusal:
            _job_finish(job.pk, rows=0, error=str(refusal))
        except Exception:
            logger.exception("Export job %s failed", job_id)
            with translation.override(job.language):
                _job_finish(job.pk, rows=0, error=gettext(
                    "The export failed; the error was logged."
                ))
    return 0


def _job_write(job: ExportJob) -> int:
    """Write the job's file from its list as the user saw it; return the rows."""
    try:
        model = apps.get_model(job.source)
        model_admin = admin.site.get_model_admin(model)
    except (LookupError, ValueError, NotRegistered) as missing:
        raise ExportError(gettext("This list cannot be exported.")) from missing
    request = _replayed_request(job, model_admin)
    # Checked again: the user may have lost the permission since asking.
    if not export_allowed(request, model_admin):
        raise ExportError(gettext("You are not allowed to export this list."))
    personal_data = job.personal_data and job.user.has_perm(PERSONAL_DATA_PERMISSION)
    try:
        queryset = list_queryset(model_admin, request)
    except IncorrectLookupParameters as wrong:
        raise ExportError(gettext("These filters cannot be exported.")) from wrong
    ExportJob.objects.filter(pk=job.pk).update(rows_total=queryset.order_by().count())

    columns = export_columns(export_resource_for(model), personal_data=personal_data)
    headers = export_headers(columns, language=job.language)
    uses_copy = (
        job.file_format == ExportJob.Format.CSV
        and connections[queryset.db].vendor == "postgresql"
    )
    progress = _Progress(job.pk, separate_connection=uses_copy)
    temp_dir = getattr(default_storage, "location", None)
    if temp_dir:
        os.makedirs(temp_dir, exist_ok=True)
    out = tempfile.NamedTemporaryFile(
        dir=temp_dir, prefix=".export-", suffix=f".{job.file_format}", delete=False
    )
    try:
        with out:
            rows = _WRITERS[job.file_format](queryset, columns, headers, out, progress)
        with open(out.name, "rb") as written:
            job.file.save(export_filename(job), _MovableFile(written), save=False)
    finally:
        progress.close()
        if os.path.exists(out.name):
            os.unlink(out.name)
    ExportJob.objects.filter(pk=job.pk).update(
        file=job.file.name, personal_data=personal_data, status=ExportJob.Status.DONE,
        rows_done=rows, rows_total=rows, finished_at=timezone.now(),
    )
    return rows


@shared_task(name="members.tasks.export_job_run")
def export_job_run(job_id: int) -> int:
    """Run a queued export job (safe to deliver twice); return the rows it wrote."""
    return export_job_execute(job_id=job_id)

