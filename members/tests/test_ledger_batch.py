"""The batch writer keeps exactly the rules of the single one."""

import random
import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from members import services
from members.models import Member, PointsEntry
from members.selectors import ledger_mismatches
from members.tests.factories import MemberFactory

pytestmark = pytest.mark.django_db

KINDS = [PointsEntry.Kind.WELCOME, PointsEntry.Kind.REDEMPTION, PointsEntry.Kind.EXPIRY,
         PointsEntry.Kind.ACCRUAL, PointsEntry.Kind.ADJUSTMENT]


def random_requests(seed: int, member_ids: list[int], count: int):
    """Return a reproducible mix: credits, debits, pending accruals, repeats, bad ones."""
    rng = random.Random(seed)
    future = timezone.now() + timedelta(days=10)
    requests = []
    for i in range(count):
        kind = rng.choice(KINDS)
        amount = rng.choice([-300, -80, -20, 0, 15, 60, 250])
        if rng.random() < 0.1 and requests:
            requests.append(requests[rng.randrange(len(requests))])  # a repeated delivery
            continue
        requests.append(dict(
            slot=rng.randrange(len(member_ids)), amount=amount, kind=kind,
            idempotency_key=f"k{i}", reason=rng.choice(["", "why"]),
            allow_debt=kind == PointsEntry.Kind.EXPIRY,
            available_at=future if kind == PointsEntry.Kind.ACCRUAL and rng.random() < 0.5
            else None,
        ))
    return requests


def outcome(result):
    if isinstance(result, services.PointsRefused):
        return ("refused", result.code)
    return ("posted" if result.created else "repeat", result.entry.amount,
            result.entry.balance_after)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batch_and_single_writer_give_the_same_ledger(seed, support_user):
    single = [MemberFactory() for _ in range(4)]
    batch = [MemberFactory() for _ in range(4)]
    blocked = MemberFactory(status=Member.Status.BLOCKED)
    single.append(blocked)
    batch.append(MemberFactory(status=Member.Status.BLOCKED))
    specs = random_requests(seed, list(range(5)), 200)

    single_results = []
    for spec in specs:
        spec = dict(spec)
        member = single[spec.pop("slot")]
        try:
            single_results.append(outcome(services.points_post(member_id=member.pk, **spec)))
        except services.PointsRefused as refusal:
            single_results.append(outcome(refusal))

    batch_results = []
    for start in range(0, len(specs), 37):  # uneven chunks on purpose
        chunk = []
        for spec in specs[start:start + 37]:
            spec = dict(spec)
            member = batch[spec.pop("slot")]
            spec["idempotency_key"] = "batch-" + spec["idempotency_key"]
            chunk.append(services.PostingRequest(member_id=member.pk, **spec))
        batch_results += [outcome(r) for r in services.points_post_batch(requests=chunk)]

    assert batch_results == single_results
    for a, b in zip(single, batch, strict=True):
        a.refresh_from_db()
        b.refresh_from_db()
        assert a.points_balance == b.points_balance
    assert not list(ledger_mismatches())


def test_batch_refusal_writes_nothing_for_that_request_only():
    member = MemberFactory()
    results = services.points_post_batch(requests=[
        services.PostingRequest(member_id=member.pk, amount=50, kind="welcome",
                                idempotency_key="a"),
        services.PostingRequest(member_id=member.pk, amount=-80, kind="redemption",
                                idempotency_key="b"),
        services.PostingRequest(member_id=member.pk, amount=-50, kind="redemption",
                                idempotency_key="c"),
    ])
    assert [type(r).__name__ for r in results] == ["Posting", "PointsRefused", "Posting"]
    assert results[1].code == "insufficient_points"
    member.refresh_from_db()
    assert member.points_balance == 0
    assert not PointsEntry.objects.filter(idempotency_key="b").exists()


@pytest.mark.django_db(transaction=True)
def test_batches_and_single_postings_at_once_keep_every_balance_equal_to_its_ledger():
    members = [MemberFactory() for _ in range(6)]
    barrier = threading.Barrier(4)
    errors = []

    def batch_worker(offset: int) -> None:
        try:
            barrier.wait()
            for round_ in range(5):
                services.points_post_batch(requests=[
                    services.PostingRequest(
                        member_id=m.pk, amount=7, kind="campaign",
                        idempotency_key=f"b{offset}:{round_}:{m.pk}",
                    )
                    # Opposite orders in the two batch workers: locks must not deadlock.
                    for m in (members if offset % 2 else list(reversed(members)))
                ])
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connections.close_all()

    def single_worker(offset: int) -> None:
        try:
            barrier.wait()
            for round_ in range(10):
                for m in members:
                    services.points_post(member_id=m.pk, amount=3, kind="campaign",
                                         idempotency_key=f"s{offset}:{round_}:{m.pk}")
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=batch_worker, args=(i,)) for i in range(2)]
    threads += [threading.Thread(target=single_worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for m in members:
        m.refresh_from_db()
        assert m.points_balance == 2 * 5 * 7 + 2 * 10 * 3
    assert not list(ledger_mismatches())


def test_batch_rows_hold_every_column_a_single_posting_writes(support_user):
    # The batch writes with COPY in the model's field order: a column out of place would
    # land in its neighbour. Every column must equal what points_post writes.
    assert services._ENTRY_COLUMNS == tuple(
        field.attname for field in PointsEntry._meta.concrete_fields
    )
    single, batch = MemberFactory(), MemberFactory()
    at = timezone.now() - timedelta(days=2)
    spec = dict(amount=40, kind=PointsEntry.Kind.ACCRUAL, reference="purchase:test",
                posted_at=at, available_at=at + timedelta(days=14),
                details=[{"step": "base", "points": "40.00"}])
    services.points_post(member_id=single.pk, idempotency_key="one", actor=support_user,
                         **spec)
    [posting] = services.points_post_batch(
        requests=[services.PostingRequest(member_id=batch.pk, idempotency_key="many",
                                          **spec)],
        actor=support_user,
    )
    columns = [name for name in services._ENTRY_COLUMNS
               if name not in ("id", "member_id", "idempotency_key")]
    written = PointsEntry.objects.get(idempotency_key="many")
    assert posting.created and posting.entry.pk == written.pk
    assert [getattr(written, name) for name in columns] == [
        getattr(PointsEntry.objects.get(idempotency_key="one"), name) for name in columns
    ]
    assert written.actor_id == support_user.pk and written.details == spec["details"]


def test_batch_moves_last_purchase_times_forward_only_with_the_balances():
    earlier, later = timezone.now() - timedelta(days=5), timezone.now() - timedelta(days=1)
    buyer, other = MemberFactory(last_purchase_at=later), MemberFactory()
    services.points_post_batch(
        requests=[services.PostingRequest(member_id=buyer.pk, amount=10, kind="welcome",
                                          idempotency_key="w")],
        last_purchases={buyer.pk: earlier, other.pk: earlier},
    )
    buyer.refresh_from_db()
    other.refresh_from_db()
    # A late receipt never moves the last purchase back; a member without a posting
    # still gets their time.
    assert (buyer.points_balance, buyer.last_purchase_at) == (10, later)
    assert (other.points_balance, other.last_purchase_at) == (0, earlier)
