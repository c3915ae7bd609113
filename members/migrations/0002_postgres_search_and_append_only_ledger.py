"""Name search index and a database guard that keeps the points ledger append-only."""

from django.db import migrations

PG_FORWARD = [
    # pg_trgm is a trusted extension: the database owner may create it.
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS member_search_name_trgm "
    "ON members_member USING gin (search_name gin_trgm_ops)",
    """
    CREATE OR REPLACE FUNCTION members_pointsentry_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'points ledger rows are append-only; post a reversal instead'
            USING ERRCODE = 'integrity_constraint_violation';
    END;
    $$ LANGUAGE plpgsql
    """,
    "DROP TRIGGER IF EXISTS pointsentry_append_only ON members_pointsentry",
    "CREATE TRIGGER pointsentry_append_only BEFORE UPDATE OR DELETE "
    "ON members_pointsentry FOR EACH ROW EXECUTE FUNCTION members_pointsentry_append_only()",
]
PG_BACKWARD = [
    "DROP TRIGGER IF EXISTS pointsentry_append_only ON members_pointsentry",
    "DROP FUNCTION IF EXISTS members_pointsentry_append_only()",
    "DROP INDEX IF EXISTS member_search_name_trgm",
]
SQLITE_FORWARD = [
    "CREATE TRIGGER IF NOT EXISTS pointsentry_no_update BEFORE UPDATE ON members_pointsentry "
    "BEGIN SELECT RAISE(ABORT, 'points ledger rows are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS pointsentry_no_delete BEFORE DELETE ON members_pointsentry "
    "BEGIN SELECT RAISE(ABORT, 'points ledger rows are append-only'); END",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS pointsentry_no_update",
    "DROP TRIGGER IF EXISTS pointsentry_no_delete",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("members", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": PG_FORWARD, "sqlite": SQLITE_FORWARD}),
            _run({"postgresql": PG_BACKWARD, "sqlite": SQLITE_BACKWARD}),
        ),
    ]
