"""Kinds of import: what a file holds, its columns, and how its rows are checked and written.

Each app declares its kinds in a module of its own and registers them with
:func:`kind_register`. The registry is lazy: the first time kinds are asked for, it
imports the modules listed in the ``LOYALTY_IMPORT_KINDS`` setting (default
:data:`DEFAULT_KIND_MODULES`), so no app config has to know about imports and
``members`` never imports a higher app by name.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from members.importing.files import Parser, SourceRow

# What an import did (or would do) with a row.
NEW, UPDATED, UNCHANGED, ERROR = "new", "updated", "unchanged", "error"
OUTCOMES = (NEW, UPDATED, UNCHANGED, ERROR)

DEFAULT_KIND_MODULES = ("members.importing.kinds", "rewards.importing")

DUPLICATE_IN_FILE = _("This %(record)s already appears on row %(row)s of the file.")

_SEPARATORS = re.compile(r"[\s_\-./:*]+")


def header_normalise(text: Any) -> str:
    """Return a column name as compared: lower case, ё as е, runs of spaces, dashes,
    dots and underscores as one space ("E-mail", "e_mail" and " E  MAIL " match)."""
    text = str(text or "").replace("\ufeff", "").strip().strip('"').lower().replace("ё", "е")
    return _SEPARATORS.sub(" ", text).strip()


@dataclass(frozen=True)
class Column:
    """One column an import understands.

    ``label`` is the name shown on screens and in the sample file (translated);
    ``aliases`` are the other names accepted in a file's header, in English and
    Russian. A ``required`` column must be in the header and filled on every row.
    """

    key: str
    label: Any
    parser: Parser
    required: bool = False
    aliases: tuple[str, ...] = ()
    help_text: Any = ""

    def names(self) -> set[str]:
        """Return every normalised header that means this column, in every language."""
        names = {header_normalise(self.key), *(header_normalise(a) for a in self.aliases)}
        for code, _name in settings.LANGUAGES:
            with translation.override(code):
                names.add(header_normalise(str(self.label)))
        return names


@dataclass
class RowError:
    """Why a row is refused: its number, the column key ("" for the row) and a message."""

    row: int
    column: str
    message: str


@dataclass
class Record:
    """One thing to import: a row, or consecutive rows that make one (a receipt's lines).

    ``lines`` holds each row's parsed values by column key (None: blank or missing).
    Kinds set ``outcome`` in :meth:`ImportKind.check`, may keep what they looked up in
    ``target`` and ``plan`` for :meth:`ImportKind.apply`, and add errors with
    :meth:`error`.
    """

    rows: list[SourceRow]
    lines: list[dict[str, Any]]
    errors: list[RowError] = field(default_factory=list)
    key: str = ""
    outcome: str = ""
    target: Any = None
    plan: dict[str, Any] = field(default_factory=dict)
    # The merged values of a record of several lines, with how many lines they cover.
    _merged: tuple[int, dict[str, Any]] | None = field(
        default=None, init=False, repr=False, compare=False,
    )

    @property
    def first_row(self) -> int:
        return self.rows[0].number

    @property
    def values(self) -> dict[str, Any]:
        """Return the record's values: for each column the first one given on its rows.

        Computed once for a record of several lines (kinds ask for it many times per
        record): again only when a line was added since. Read it, never change it.
        """
        lines = self.lines
        if len(lines) == 1:
            return lines[0]
        if self._merged is not None and self._merged[0] == len(lines):
            return self._merged[1]
        merged: dict[str, Any] = {}
        for line in lines:
            for key, value in line.items():
                if merged.get(key) is None:
                    merged[key] = value
        self._merged = (len(lines), merged)
        return merged

    def error(self, column: str, message, *, on_row: int | None = None, **params) -> None:
        """Refuse the record: ``message`` (with ``params``) about ``column`` on row
        ``on_row`` (default: the record's first row)."""
        text = str(message) % params if params else str(message)
        self.errors.append(RowError(row=on_row or self.first_row, column=column, message=text))
        self.outcome = ERROR


class ImportKind(ABC):
    """What one kind of file holds and how its rows reach the database.

    A subclass declares ``key``, ``label``, ``columns``, the ``permissions`` a user
    needs, and implements :meth:`row_key` (a record's identity, for idempotency and
    duplicate rows), :meth:`check` (look up, classify, refuse; no writes) and
    :meth:`apply` (write through services). An instance lives for one run, so it may
    cache what it looked up in :meth:`start`. ``group_by`` makes consecutive rows with
    equal values in those columns one record.
    """

    key: ClassVar[str] = ""
    label: ClassVar[Any] = ""
    description: ClassVar[Any] = ""
    record_name: ClassVar[Any] = _("row")
    columns: ClassVar[tuple[Column, ...]] = ()
    permissions: ClassVar[tuple[str, ...]] = ()
    group_by: ClassVar[tuple[str, ...]] = ()
    key_columns: ClassVar[tuple[str, ...]] = ()
    # Rows per batch (one check and one apply each); 0: the runner's default. A kind that
    # writes set-based gains from larger batches.
    batch_rows: ClassVar[int] = 0

    @classmethod
    def has_permission(cls, user: AbstractBaseUser) -> bool:
        """Return whether ``user`` may import this kind (active staff holding every
        permission of the kind)."""
        return bool(
            user.is_active and user.is_staff and user.has_perms(cls.permissions)
        )

    @classmethod
    def column(cls, key: str) -> Column:
        return next(column for column in cls.columns if column.key == key)

    @abstractmethod
    def row_key(self, record: Record) -> str:
        """Return what identifies the record across files ("" when its key is not valid)."""

    def start(self, job) -> None:  # noqa: B027 - an optional hook, empty by default
        """Load what every batch needs (e.g. stores by code) before the first one."""

    @abstractmethod
    def check(self, records: list[Record], job) -> None:
        """Look the records up and set each one's outcome (new, updated, unchanged) or
        errors. Records may already carry errors from their cells; write nothing."""

    @abstractmethod
    def apply(self, records: list[Record], job) -> None:
        """Write the checked, valid, new or updated records through the services.

        A refusal of the services becomes an error on its record; the caller's
        transaction stays usable (the services and the kinds use savepoints).
        """


# ------------------------------------------------------------------ registry

_kinds: dict[str, type[ImportKind]] = {}
_loaded = False
_lock = threading.Lock()


def kind_register(kind: type[ImportKind]) -> type[ImportKind]:
    """Register an import kind (usable as a class decorator); the last one of a key wins."""
    _kinds[kind.key] = kind
    return kind


def _kinds_load() -> None:
    global _loaded
    if _loaded:
        return
    with _lock:
        if not _loaded:
            for module in getattr(settings, "LOYALTY_IMPORT_KINDS", DEFAULT_KIND_MODULES):
                import_module(module)
            _loaded = True


def kinds_all() -> dict[str, type[ImportKind]]:
    """Return every registered kind by key, in registration order."""
    _kinds_load()
    return dict(_kinds)


def kind_get(key: str) -> type[ImportKind] | None:
    """Return the kind registered under ``key``, or None."""
    return kinds_all().get(key)


def kinds_for_user(user: AbstractBaseUser) -> list[type[ImportKind]]:
    """Return the kinds ``user`` may import."""
    return [kind for kind in kinds_all().values() if kind.has_permission(user)]


__all__ = [
    "DEFAULT_KIND_MODULES", "ERROR", "NEW", "OUTCOMES", "UNCHANGED", "UPDATED", "Column",
    "ImportKind", "Record", "RowError", "header_normalise", "kind_get", "kind_register",
    "kinds_all", "kinds_for_user",
]
