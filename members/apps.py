from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def sqlite_unicode_upper(sender, connection, **kwargs) -> None:
    """Give SQLite a Unicode UPPER(), so Cyrillic names are searchable on the dev database.

    SQLite's own UPPER() folds ASCII only; PostgreSQL needs nothing.
    """
    if connection.vendor == "sqlite":
        connection.connection.create_function(
            "UPPER", 1, lambda text: text.upper() if isinstance(text, str) else text,
            deterministic=True,
        )


def sqlite_ledger_guard_ensure(sender, using="default", **kwargs) -> None:
    """Re-create the SQLite triggers that keep the ledger append-only after migrations.

    SQLite applies some schema changes by rebuilding the table, which drops its
    triggers; PostgreSQL keeps them, so there migration 0002 is enough.
    """
    from django.db import connections

    from members.ledger_guard import SQLITE_LEDGER_GUARD

    connection = connections[using]
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        for statement in SQLITE_LEDGER_GUARD:
            cursor.execute(statement)


class MembersConfig(AppConfig):
    """Members, their purchases and their points account (the ledger)."""

    name = "members"
    verbose_name = _("Members and points")

    def ready(self) -> None:
        from members import checks  # noqa: F401 - registers the system checks

        connection_created.connect(sqlite_unicode_upper, dispatch_uid="members-sqlite-upper")
        post_migrate.connect(
            sqlite_ledger_guard_ensure, sender=self, dispatch_uid="members-sqlite-ledger-guard"
        )
