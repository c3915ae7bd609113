"""Writing many rows at once on PostgreSQL: COPY, ids taken from a table's sequence, and
statements whose array parameters are bound by the server.

Django's psycopg backend binds parameters on the client: it quotes every value into the
SQL text, which is right for a form's row and slow for arrays of thousands of values (a
batch of 2,000 receipts spent more time quoting its arrays than PostgreSQL spent running
the statement). The batch services (imports, the nightly jobs) use these instead; each
runs through Django's cursor wrapper, so tests that count queries still see them.
"""

from __future__ import annotations

# Statements name tables from model metadata; every value is a parameter or COPY data.
# ruff: noqa: S608
from collections.abc import Iterable, Sequence

import psycopg
from django.db import connection
from django.db.models import Model


def _server_bound_cursor():
    """Return a Django cursor wrapper around a psycopg cursor that binds on the server."""
    connection.ensure_connection()
    raw = psycopg.Cursor(connection.connection)
    if connection.queries_logged:
        return connection.make_debug_cursor(raw)
    return connection.make_cursor(raw)


def arrays_execute(sql: str, params: Sequence) -> list[tuple]:
    """Run one statement with its parameters bound by the server; return its rows.

    Meant for ``unnest(%s::bigint[], ...)`` statements over whole batches: the arrays
    travel in psycopg's binary format instead of being quoted into the SQL text. Write
    placeholders as ``%s``; there is no ``%%`` escape here.
    """
    with _server_bound_cursor() as cursor:
        # %b: every parameter in psycopg's binary format, which dumps an array of
        # thousands of ids, texts, amounts or times twice as fast as text.
        cursor.execute(sql.replace("%s", "%b"), params)
        return cursor.fetchall() if cursor.description else []


def ids_reserve(model: type[Model], count: int) -> Sequence[int]:
    """Return ``count`` fresh primary keys of ``model``'s table, taken from its sequence.

    Rows written with COPY carry them, so the caller knows each row's id without a
    RETURNING; numbers another session takes meanwhile only leave gaps.
    """
    if count <= 0:
        return range(0)
    # The table is named in the SQL text (not a parameter) so that what watches
    # statements (logs, the fault tests) sees which table is about to be written.
    sequence = f"nextval(pg_get_serial_sequence('{model._meta.db_table}', 'id'))"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT min(v), max(v) FROM (SELECT {sequence} AS v "
            "FROM generate_series(1, %s)) AS reserved",
            [count],
        )
        low, high = cursor.fetchone()
        if high - low + 1 == count:
            return range(low, high + 1)
        # Another session drew numbers at the same time: these are ours, with gaps.
        cursor.execute(f"SELECT {sequence} FROM generate_series(1, %s)", [count])
        return [row[0] for row in cursor.fetchall()]


def rows_copy(model: type[Model], columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    """Write ``rows`` (tuples in the order of ``columns``) into ``model``'s table with
    COPY; return how many. Constraints and triggers apply as to any INSERT."""
    statement = f"COPY {model._meta.db_table} ({', '.join(columns)}) FROM STDIN"
    written = 0
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
            written += 1
    return written


__all__ = ["arrays_execute", "ids_reserve", "rows_copy"]
