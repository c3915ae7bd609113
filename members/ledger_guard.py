"""Database triggers that refuse UPDATE and DELETE of points ledger rows."""

SQLITE_LEDGER_GUARD = (
    "CREATE TRIGGER IF NOT EXISTS pointsentry_no_update BEFORE UPDATE ON members_pointsentry "
    "BEGIN SELECT RAISE(ABORT, 'points ledger rows are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS pointsentry_no_delete BEFORE DELETE ON members_pointsentry "
    "BEGIN SELECT RAISE(ABORT, 'points ledger rows are append-only'); END",
)
