"""System checks for what the members app needs from its database."""

from django.core.checks import Tags, Warning, register
from django.db import connections


@register(Tags.database)
def database_ctype_check(app_configs, databases=None, **kwargs):
    """Warn when PostgreSQL's LC_CTYPE cannot upper-case non-Latin names.

    Name search compares upper-cased text; with LC_CTYPE C or POSIX PostgreSQL folds Latin
    letters only, so a search for "петр" would never find "Петров".
    """
    warnings = []
    for alias in databases or []:
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        with connection.cursor() as cursor:
            cursor.execute("SHOW lc_ctype")
            ctype = cursor.fetchone()[0]
        if ctype.upper() in {"C", "POSIX"}:
            warnings.append(Warning(
                f"Database '{alias}' has LC_CTYPE {ctype}: names in Cyrillic and other "
                "non-Latin scripts cannot be searched case-insensitively.",
                hint="Create the database with a UTF-8 ctype, e.g. "
                     "createdb --template=template0 --lc-ctype=C.UTF-8 loyalty",
                id="members.W001",
            ))
    return warnings
