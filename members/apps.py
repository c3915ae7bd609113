from django.apps import AppConfig
from django.db.backends.signals import connection_created
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


class MembersConfig(AppConfig):
    """Members, their purchases and their points account (the ledger)."""

    name = "members"
    verbose_name = _("Members and points")

    def ready(self) -> None:
        from members import checks  # noqa: F401 - registers the system checks

        connection_created.connect(sqlite_unicode_upper, dispatch_uid="members-sqlite-upper")
