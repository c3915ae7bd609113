"""Celery tasks of the members app, in-process and on a real worker through Redis."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from celery import Celery
from django.db import connection

from members.models import Member
from members.tasks import ledger_verify
from members.tests.factories import MemberFactory, points_give

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_ledger_verify_task_counts_mismatched_members():
    healthy, broken = MemberFactory(), MemberFactory()
    points_give(healthy, 5, key="a")
    points_give(broken, 5, key="b")
    assert ledger_verify.delay().get() == 0
    Member.objects.filter(pk=broken.pk).update(points_balance=6)
    assert ledger_verify.delay().get() == 1


@pytest.mark.django_db(transaction=True)
def test_tasks_run_on_a_real_worker_through_redis():
    """The production wiring: JSON messages over Redis, a worker process, the same database."""
    redis_url = os.environ["REDIS_URL"]  # bin/test.sh starts Redis and sets it
    broken = MemberFactory()
    points_give(broken, 5, key="b")
    Member.objects.filter(pk=broken.pk).update(points_balance=50)

    database_url = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    env = {
        **os.environ,
        "DATABASE_URL": f"{database_url}/{connection.settings_dict['NAME']}",
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "DJANGO_SETTINGS_MODULE": "loyalty_admin.settings.test",
    }
    worker = subprocess.Popen(  # noqa: S603 - our own worker, fixed arguments
        [sys.executable, "-m", "celery", "-A", "loyalty_admin", "worker", "--pool=solo",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning"],
        cwd=ROOT, env=env,
    )
    try:
        client = Celery(broker=redis_url, backend=redis_url, set_as_current=False)
        client.conf.update(task_serializer="json", accept_content=["json"])
        result = client.send_task("members.tasks.ledger_verify")
        assert result.get(timeout=90) == 1
    finally:
        worker.terminate()
        worker.wait(timeout=30)


@pytest.mark.django_db
def test_database_under_test_can_upper_case_cyrillic_names():
    from members.checks import database_ctype_check

    assert database_ctype_check(None, databases=["default"]) == []
