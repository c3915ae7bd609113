"""Bad input at random (hypothesis): import files and sequences of ledger movements.

- Any bytes given as an import file end in a clean import or a clear refusal (a
  message, or errors with row and column), never an exception, and a refused
  all-or-nothing import writes nothing.
- Any interleaving of accruals, redemptions, reversals, returns and batch postings keeps
  every member's cached balance equal to the sum of the ledger, each balance_after equal
  to the running sum, and no balance below zero except a debt left by a return.

Bounded for CI: a few dozen examples each, no deadline (the database sets the pace),
no example database written to the checkout. Each example runs in a savepoint that is
rolled back, so examples do not see each other's rows.
"""

import codecs
import hashlib
import os

import pytest
from django.core.files.base import ContentFile
from django.db import transaction
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from members.importing import runner
from members.models import ImportJob, Member, PointsEntry
from members.selectors import ledger_mismatches
from members.services import (
    PointsRefused,
    PostingRequest,
    points_post,
    points_post_batch,
    points_reverse,
)

pytestmark = pytest.mark.django_db

BOUNDED = settings(
    # HYPOTHESIS_EXAMPLES=500 for a longer hunt on a quiet machine.
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "40")),
    deadline=None, database=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def staff(admin_user):
    return admin_user


# ------------------------------------------------------------------ import files

HEADERS = ["card number", "first name", "last name", "phone", "e-mail", "birth date",
           "points", "номер карты", "имя", "баллы", "", "card"]
CELLS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["4400001", "4400002", "12.03.1990", "1990-03-12", "31.02.2001",
                     "+7 912 345-67-89", "a@b.c", "not-an-email", "-5", "1 000,50", "=1+1",
                     "<script>alert(1)</script>", "\x00", "да", "yes"]),
)


@st.composite
def delimited_files(draw) -> bytes:
    """Text files that look like CSV: a header of known and unknown names, ragged rows,
    any delimiter, in UTF-8 (with or without BOM), Windows-1251 or UTF-16."""
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    # Mostly a header an import would accept, so that rows and cells get checked too.
    known = draw(st.sampled_from([["card number", "first name"], ["card number", "points"],
                                  ["номер карты", "имя", "баллы"], []]))
    header = known + draw(st.lists(st.sampled_from(HEADERS), max_size=3))
    card = st.one_of(st.sampled_from(["4400001", "4400002", "4400003", ""]), CELLS)
    rows = draw(st.lists(st.tuples(card, st.lists(CELLS, max_size=5)).map(
        lambda row: [row[0], *row[1]]), max_size=6))
    text = "\r\n".join(delimiter.join(cells) for cells in [header, *rows])
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1251", "utf-16"]))
    data = text.encode(encoding, errors="replace")
    return data


ANY_FILE = st.one_of(
    st.binary(max_size=600),
    # Weighted towards text that gets past the file checks to the rows and cells.
    delimited_files(), delimited_files(), delimited_files(), delimited_files(),
    st.binary(max_size=300).map(lambda tail: b"PK\x03\x04" + tail),  # a broken XLSX
    st.binary(max_size=300).map(lambda tail: codecs.BOM_UTF8 + tail),
)


def db_state() -> tuple:
    return (
        Member.objects.count(),
        PointsEntry.objects.count(),
        sum(Member.objects.values_list("points_balance", flat=True)),
    )


def job_for(user, kind: str, content: bytes, skip_bad_rows: bool) -> ImportJob:
    job = ImportJob(
        kind=kind, original_name="upload.csv", file_size=len(content),
        file_sha256=hashlib.sha256(content).hexdigest(), skip_bad_rows=skip_bad_rows,
        created_by=user,
    )
    job.file.save("upload.csv", ContentFile(content), save=False)
    job.save()
    return job


@BOUNDED
@given(content=ANY_FILE, kind=st.sampled_from(["members", "opening_balances"]),
       skip_bad_rows=st.booleans())
def test_any_file_imports_cleanly_or_is_refused_with_a_reason(
    staff, content, kind, skip_bad_rows
):
    with transaction.atomic():
        Member.objects.get_or_create(card_number="4400001", defaults={"first_name": "Known"})
        before = db_state()
        job = job_for(staff, kind, content, skip_bad_rows)
        runner.import_job_preview(job)  # must not raise
        assert job.status in (ImportJob.Status.PREVIEWED, ImportJob.Status.REJECTED)
        event(f"check {job.status}")
        if job.status == ImportJob.Status.REJECTED:
            assert job.message.strip(), "a refused file says why"
            assert db_state() == before
        else:
            assert db_state() == before, "the check writes nothing"
            for error in job.errors:
                assert error["row"] and error["message"], error
            runner.import_job_confirm(job)
            runner.import_job_apply(job)  # must not raise
            job.refresh_from_db()
            event(f"import {job.status}")
            assert job.status in (ImportJob.Status.DONE, ImportJob.Status.REJECTED), job.message
            if job.status == ImportJob.Status.REJECTED:
                assert job.message.strip()
                if not skip_bad_rows:
                    assert db_state() == before, "all or nothing: nothing"
            assert list(ledger_mismatches()) == []
        transaction.set_rollback(True)


# ------------------------------------------------------------------ the ledger

OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("accrue"), st.integers(0, 1), st.integers(1, 500)),
        st.tuples(st.just("redeem"), st.integers(0, 1), st.integers(1, 500)),
        st.tuples(st.just("reverse"), st.integers(0, 1), st.integers(0, 30)),
        st.tuples(st.just("return"), st.integers(0, 1), st.integers(1, 500)),
        st.tuples(st.just("batch"), st.integers(0, 1), st.lists(
            st.integers(-300, 300).filter(bool), min_size=1, max_size=4)),
    ),
    min_size=1, max_size=25,
)


def _apply(operation, members: list[Member], step: int) -> None:
    name, which, value = operation
    member_id = members[which].pk
    if name == "accrue":
        points_post(member_id=member_id, amount=value, kind=PointsEntry.Kind.ACCRUAL,
                    idempotency_key=f"p:{step}")
    elif name == "redeem":
        points_post(member_id=member_id, amount=-value, kind=PointsEntry.Kind.REDEMPTION,
                    idempotency_key=f"p:{step}")
    elif name == "return":
        # A return takes back points already earned, even when they were spent: a debt.
        points_post(member_id=member_id, amount=-value, kind=PointsEntry.Kind.RETURN,
                    idempotency_key=f"p:{step}", allow_debt=True)
    elif name == "reverse":
        entries = list(PointsEntry.objects.filter(member_id=member_id).order_by("id"))
        if entries:
            points_reverse(entry_id=entries[value % len(entries)].pk, reason="Mistake",
                           actor=None)
    else:
        points_post_batch(requests=[
            PostingRequest(member_id=member_id, amount=amount,
                           kind=PointsEntry.Kind.ACCRUAL if amount > 0
                           else PointsEntry.Kind.REDEMPTION,
                           idempotency_key=f"p:{step}:{index}")
            for index, amount in enumerate(value)
        ])


def _assert_ledger_consistent(members: list[Member]) -> None:
    assert list(ledger_mismatches()) == []
    for member in members:
        running = 0
        for entry in PointsEntry.objects.filter(member=member).order_by("id"):
            before, running = running, running + entry.amount
            assert entry.balance_after == running, "balance_after is the running sum"
            if running < 0 and entry.amount < 0:
                # Only a return may take a balance below zero (or deeper into a debt).
                assert entry.kind == PointsEntry.Kind.RETURN, (entry.kind, before, running)


@BOUNDED
@given(operations=OPERATIONS)
def test_any_interleaving_keeps_balance_equal_to_the_ledger_and_debt_only_from_returns(
    operations,
):
    with transaction.atomic():
        members = [Member.objects.create(card_number=f"55{i}", first_name="P") for i in (0, 1)]
        for step, operation in enumerate(operations):
            count = PointsEntry.objects.count()
            balances = list(Member.objects.order_by("id").values_list("points_balance",
                                                                        flat=True))
            try:
                with transaction.atomic():
                    _apply(operation, members, step)
            except PointsRefused:
                # A refusal writes nothing at all.
                assert PointsEntry.objects.count() == count
                assert list(Member.objects.order_by("id").values_list(
                    "points_balance", flat=True)) == balances
            _assert_ledger_consistent(members)
        transaction.set_rollback(True)
