"""The embedded default (SQLite) runs the same ledger rules as PostgreSQL.

The ledger writer has one SQL path per database; tests run on PostgreSQL, so this one
drives the SQLite path in a separate process on a throwaway database file.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from datetime import timedelta
from django.utils import timezone
from members.models import Member, PointsEntry
from members.services import PointsRefused, points_post
from members.selectors import ledger_mismatches, member_search

member = Member.objects.create(card_number="2000", first_name="Иван", last_name="Петров",
                               phone="79123456789")
points_post(member_id=member.pk, amount=100, kind="welcome", idempotency_key="w")
points_post(member_id=member.pk, amount=50, kind="accrual", idempotency_key="a",
            available_at=timezone.now() + timedelta(days=14))
assert not points_post(member_id=member.pk, amount=100, kind="welcome",
                       idempotency_key="w").created
try:
    points_post(member_id=member.pk, amount=-120, kind="redemption", idempotency_key="r")
except PointsRefused as refusal:
    assert refusal.code == "insufficient_points", refusal.code
else:
    raise AssertionError("pending points were spent")
points_post(member_id=member.pk, amount=-100, kind="redemption", idempotency_key="r2")
member.refresh_from_db()
assert member.points_balance == 50, member.points_balance
assert not list(ledger_mismatches())
try:
    PointsEntry.objects.filter(member=member).update(amount=1)
except Exception as error:
    assert "append-only" in str(error)
else:
    raise AssertionError("ledger row updated")
assert list(member_search(queryset=Member.objects.all(), query="петр")) == [member]
print("sqlite-ok")
"""


def test_ledger_rules_hold_on_the_embedded_sqlite_database(tmp_path):
    env = {
        key: value for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="loyalty_admin.settings.local",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=180, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sqlite-ok" in result.stdout
