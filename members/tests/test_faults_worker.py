"""Celery workers killed with SIGKILL: the message comes back, the job ends once.

Real worker processes on the test Redis, started with ``-A members.tests.faults_app``
(the project's app with late acknowledgement, requeue on worker loss, a short Redis
visibility timeout and the delivery guard). Nobody sends the task twice by hand: the
broker itself gives a dead worker's message to the next worker.
"""

import time
from datetime import timedelta

import pytest
from django.db.models import Count
from django.utils import timezone

from members.models import Member, PointsEntry
from members.selectors import ledger_mismatches
from members.services import PostingRequest, points_post_batch
from members.tests.faults import broker, faults_marker, wait_for, worker_start, worker_stop

__all__ = ["broker"]  # the fixture, imported for the tests below

pytestmark = [faults_marker(), pytest.mark.django_db(transaction=True)]

APP = "members.tests.faults_app"


def test_nightly_expiry_whose_worker_is_killed_is_finished_by_the_next_worker_once(broker):
    """4,000 members with 40 points earned 13 months ago; expiry posts in batches of 1,000."""
    client, queue, env = broker
    Member.objects.bulk_create(Member(card_number=f"66{i:06d}", first_name="K")
                               for i in range(4000))
    long_ago = timezone.now() - timedelta(days=400)
    points_post_batch(requests=[
        PostingRequest(member_id=member_id, amount=40, kind=PointsEntry.Kind.WELCOME,
                       idempotency_key=f"old:{member_id}", posted_at=long_ago)
        for member_id in Member.objects.values_list("id", flat=True)
    ])
    expired = PointsEntry.objects.filter(kind=PointsEntry.Kind.EXPIRY)

    first = worker_start(env, app=APP, queue=queue)
    try:
        client.send_task("rewards.tasks.points_expire_nightly", queue=queue)
        wait_for(lambda: expired.exists(), timeout=90, message="the first worker never began")
    finally:
        first.kill()  # SIGKILL: no clean-up, as a machine that dies
        first.wait(timeout=30)
    posted = expired.count()
    assert 0 < posted < 4000, "killed in the middle"
    assert posted % 1000 == 0, "a batch is committed whole or not at all"
    assert list(ledger_mismatches()) == []

    second = worker_start(env, app=APP, queue=queue)
    try:
        # No one sends it again: the broker returns the unacknowledged message.
        wait_for(lambda: expired.count() == 4000, timeout=90, every=0.2,
                 message="the message never came back to the next worker")
        time.sleep(1)  # a duplicate delivery would show up here
    finally:
        worker_stop(second)
    per_member = expired.values("member_id").annotate(n=Count("id"))
    assert {row["n"] for row in per_member} == {1} and len(per_member) == 4000
    assert set(Member.objects.values_list("points_balance", flat=True)) == {0}
    assert list(ledger_mismatches()) == []


def test_a_task_that_kills_every_worker_is_dropped_after_two_deliveries_and_reported(
    broker, tmp_path
):
    client, queue, env = broker
    marker, log = tmp_path / "deliveries.txt", tmp_path / "worker.log"
    client.send_task("faults.worker_killer", args=[str(marker)], queue=queue)
    workers = []
    try:
        # A supervisor (systemd, Kubernetes) starts a new worker each time one dies.
        for _attempt in range(4):
            worker = worker_start(env, app=APP, queue=queue, log=log)
            workers.append(worker)
            wait_for(lambda w=worker: w.poll() is not None or "dropped" in log.read_text(
                errors="replace") if log.exists() else False, timeout=60, every=0.1,
                message="the worker neither died nor dropped the task")
            if worker.poll() is None:
                break
        last = workers[-1]
        assert last.poll() is None, "the last worker is alive: the crash loop stopped"
        time.sleep(1)
    finally:
        for worker in workers:
            worker_stop(worker)
    assert marker.read_text().count("delivered") == 2
    text = log.read_text(errors="replace")
    assert "faults.worker_killer[" in text
    assert "dropped: delivered 2 times and its worker died each time (limit 2)" in text
    assert len(workers) == 3
