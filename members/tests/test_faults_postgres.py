"""PostgreSQL restarted in the middle of an import and of the nightly jobs.

The server is restarted (``pg_ctl restart -m fast``) just before a chosen statement of
the job, so the statement, and the transaction it belongs to, die with the server.
Each job must then either fail cleanly (nothing half-written, a clear message) or leave
a checkpoint that the next delivery of its task resumes from; afterwards no points are
posted twice and the ledger invariant holds.
"""

import hashlib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.db import DatabaseError, connections
from django.db.models import Count
from django.utils import timezone

from members.importing import runner
from members.importing.tasks import import_job_apply_run
from members.models import ImportJob, Member, PointsEntry
from members.selectors import ledger_mismatches
from members.services import PostingRequest, points_expire_due, points_post_batch
from members.tests.faults import faults_marker, inserts_into, pg_datadir, pg_restarted_at

__all__ = ["pg_datadir"]  # the fixture, imported for the tests below

pytestmark = [faults_marker(), pytest.mark.django_db(transaction=True)]

CARDS = [f"77{i:06d}" for i in range(300)]


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def members_300(db):
    Member.objects.bulk_create(
        Member(card_number=card, first_name=f"M{index}") for index, card in enumerate(CARDS)
    )


def opening_file() -> bytes:
    """Opening balances: card i gets 10 + i points (sum 300 × 10 + 0 + ... + 299)."""
    lines = ["card number,points"] + [f"{card},{10 + i}" for i, card in enumerate(CARDS)]
    return ("\r\n".join(lines) + "\r\n").encode()


OPENING_TOTAL = sum(10 + i for i in range(300))


def job_make(user, content: bytes, *, kind="opening_balances", skip_bad_rows=True) -> ImportJob:
    job = ImportJob(
        kind=kind, original_name="balances.csv", file_size=len(content),
        file_sha256=hashlib.sha256(content).hexdigest(), skip_bad_rows=skip_bad_rows,
        created_by=user,
    )
    job.file.save("balances.csv", ContentFile(content), save=False)
    job.save()
    runner.import_job_preview(job)
    assert job.status == ImportJob.Status.PREVIEWED, job.message
    runner.import_job_confirm(job)
    return job


def opening_entries() -> dict:
    return dict(
        PointsEntry.objects.filter(kind=PointsEntry.Kind.OPENING)
        .values("member_id").annotate(n=Count("id")).values_list("member_id", "n")
    )


def assert_ledger_exact() -> None:
    assert list(ledger_mismatches()) == []
    duplicated = (
        PointsEntry.objects.values("idempotency_key").annotate(n=Count("id")).filter(n__gt=1)
    )
    assert not duplicated.exists()


# ------------------------------------------------------------------ imports


def test_batched_import_cut_by_a_restart_resumes_from_its_checkpoint(
    pg_datadir, members_300, admin_user, monkeypatch
):
    """What a retry of the task does after the restart: the job finishes, nothing twice."""
    monkeypatch.setattr(runner, "BATCH_ROWS", 50)
    job = job_make(admin_user, opening_file())
    with pg_restarted_at(pg_datadir, inserts_into("members_pointsentry"), nth=120) as fired:
        with pytest.raises(DatabaseError):
            runner.import_job_apply(job)
    assert fired
    connections.close_all()
    job.refresh_from_db()
    # Two batches of 50 committed with their checkpoint; the third died whole.
    assert (job.status, job.rows_done) == (ImportJob.Status.IMPORTING, 100)
    assert len(opening_entries()) == 100
    assert_ledger_exact()

    runner.import_job_apply(job)  # the same task, delivered again
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE
    assert job.counts == {"new": 300, "updated": 0, "unchanged": 0, "error": 0}
    assert set(opening_entries().values()) == {1} and len(opening_entries()) == 300
    assert sum(Member.objects.values_list("points_balance", flat=True)) == OPENING_TOTAL
    assert_ledger_exact()


def test_import_task_cut_by_a_restart_fails_cleanly_and_the_file_imports_again_once(
    pg_datadir, members_300, admin_user, monkeypatch
):
    monkeypatch.setattr(runner, "BATCH_ROWS", 50)
    job = job_make(admin_user, opening_file())
    with pg_restarted_at(pg_datadir, inserts_into("members_pointsentry"), nth=120):
        status = import_job_apply_run(job.pk, "en")
    connections.close_all()
    job.refresh_from_db()
    assert status == job.status == ImportJob.Status.FAILED
    assert "100" in job.message  # says how many rows went in before it stopped
    assert len(opening_entries()) == 100
    assert_ledger_exact()

    again = job_make(admin_user, opening_file())  # the person uploads the same file again
    runner.import_job_apply(again)
    again.refresh_from_db()
    assert again.status == ImportJob.Status.DONE
    assert again.counts == {"new": 200, "updated": 0, "unchanged": 100, "error": 0}
    assert set(opening_entries().values()) == {1} and len(opening_entries()) == 300
    assert sum(Member.objects.values_list("points_balance", flat=True)) == OPENING_TOTAL
    assert_ledger_exact()


def test_all_or_nothing_import_cut_by_a_restart_leaves_nothing_and_runs_again(
    pg_datadir, members_300, admin_user, monkeypatch
):
    monkeypatch.setattr(runner, "BATCH_ROWS", 50)
    job = job_make(admin_user, opening_file(), skip_bad_rows=False)
    with pg_restarted_at(pg_datadir, inserts_into("members_pointsentry"), nth=200):
        with pytest.raises(DatabaseError):
            runner.import_job_apply(job)
    connections.close_all()
    assert opening_entries() == {}
    assert set(Member.objects.values_list("points_balance", flat=True)) == {0}
    job.refresh_from_db()
    assert job.status == ImportJob.Status.IMPORTING

    runner.import_job_apply(job)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE and len(opening_entries()) == 300
    assert_ledger_exact()


# ------------------------------------------------------------------ nightly jobs


def test_points_expiry_cut_by_a_restart_posts_the_rest_on_the_rerun_and_nothing_twice(
    pg_datadir,
):
    """2,500 members with 40 points each earned 13 months ago; expiry runs in batches of
    1,000 members; the server restarts while the second batch is written."""
    Member.objects.bulk_create(
        Member(card_number=f"88{i:06d}", first_name="E") for i in range(2500)
    )
    long_ago = timezone.now() - timedelta(days=400)
    points_post_batch(requests=[
        PostingRequest(member_id=member_id, amount=40, kind=PointsEntry.Kind.WELCOME,
                       idempotency_key=f"old:{member_id}", posted_at=long_ago)
        for member_id in Member.objects.values_list("id", flat=True)
    ])
    with pg_restarted_at(pg_datadir, inserts_into("members_pointsentry"), nth=2):
        with pytest.raises(DatabaseError):
            points_expire_due()
    connections.close_all()
    expired = PointsEntry.objects.filter(kind=PointsEntry.Kind.EXPIRY)
    assert expired.count() == 1000  # the first batch, whole; the second, not at all
    assert_ledger_exact()

    assert points_expire_due() == 1500  # the nightly task delivered again, same day
    assert points_expire_due() == 0
    assert expired.count() == 2500
    assert set(Member.objects.values_list("points_balance", flat=True)) == {0}
    assert_ledger_exact()


def test_tier_evaluation_cut_by_a_restart_leaves_nothing_and_the_rerun_is_whole(pg_datadir):
    from members.services import purchase_create
    from members.tests.factories import StoreFactory
    from rewards.evaluation import tiers_evaluate
    from rewards.models import MemberTier, TierChange
    from rewards.tests.factories import TierFactory

    bronze = TierFactory(name="Bronze", rank=1, threshold=Decimal("0"))
    silver = TierFactory(name="Silver", rank=2, threshold=Decimal("5000"))
    store = StoreFactory()
    Member.objects.bulk_create(
        Member(card_number=f"99{i:06d}", first_name="T") for i in range(40)
    )
    for index, member_id in enumerate(Member.objects.order_by("id").values_list("id", flat=True)):
        purchase_create(store_id=store.pk, receipt_number=f"T-{index}", member_id=member_id,
                        total=Decimal(index * 250), purchased_at=timezone.now())
    with pg_restarted_at(pg_datadir, inserts_into("rewards_membertier")) as fired:
        with pytest.raises(DatabaseError):
            tiers_evaluate()
    assert fired
    connections.close_all()
    # The history rows inserted just before died with the transaction.
    assert not TierChange.objects.exists() and not MemberTier.objects.exists()

    result = tiers_evaluate()
    assert result.enrolled == 40
    # 250 × index ≥ 5,000 from index 20 on: 20 Silver, 20 Bronze, one history row each.
    assert MemberTier.objects.filter(tier=silver).count() == 20
    assert MemberTier.objects.filter(tier=bronze).count() == 20
    assert TierChange.objects.count() == 40
    assert tiers_evaluate().enrolled == 0 and TierChange.objects.count() == 40
