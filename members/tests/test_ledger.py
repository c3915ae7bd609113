"""The points ledger: treated like money, tested first (real PostgreSQL)."""


import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction

from members import services
from members.models import Member, PointsAdjustment, PointsEntry
from members.selectors import ledger_mismatches, programme_settings_get
from members.tests.concurrency import run_in_threads
from members.tests.factories import MemberFactory, ledger_sum, points_give

pytestmark = pytest.mark.django_db






# ------------------------------------------------------------------ posting rules


def test_posting_updates_cached_balance_and_records_balance_after():
    member = MemberFactory()
    first = services.points_post(
        member_id=member.pk, amount=300, kind=PointsEntry.Kind.WELCOME, idempotency_key="k1"
    )
    second = services.points_post(
        member_id=member.pk, amount=-120, kind=PointsEntry.Kind.REDEMPTION, idempotency_key="k2"
    )
    member.refresh_from_db()
    assert (first.entry.balance_after, second.entry.balance_after) == (300, 180)
    assert member.points_balance == 180 == ledger_sum(member)


def test_debit_larger_than_balance_is_refused_and_writes_nothing():
    member = MemberFactory()
    points_give(member, 100)
    with pytest.raises(services.PointsRefused) as refusal:
        services.points_post(
            member_id=member.pk, amount=-101, kind=PointsEntry.Kind.REDEMPTION,
            idempotency_key="too-much",
        )
    assert refusal.value.code == "insufficient_points"
    assert "balance is 100" in str(refusal.value)
    member.refresh_from_db()
    assert member.points_balance == 100
    assert not PointsEntry.objects.filter(idempotency_key="too-much").exists()


def test_same_idempotency_key_posts_once():
    member = MemberFactory()
    kwargs = dict(member_id=member.pk, amount=50, kind=PointsEntry.Kind.CAMPAIGN,
                  idempotency_key="campaign:7:member")
    first = services.points_post(**kwargs)
    second = services.points_post(**kwargs)
    member.refresh_from_db()
    assert first.created and not second.created
    assert second.entry.pk == first.entry.pk
    assert member.points_balance == 50
    assert PointsEntry.objects.filter(member=member).count() == 1


def test_reusing_a_key_for_a_different_movement_is_refused():
    member = MemberFactory()
    services.points_post(member_id=member.pk, amount=50, kind=PointsEntry.Kind.CAMPAIGN,
                         idempotency_key="shared")
    with pytest.raises(services.PointsRefused) as refusal:
        services.points_post(member_id=member.pk, amount=70, kind=PointsEntry.Kind.CAMPAIGN,
                             idempotency_key="shared")
    assert refusal.value.code == "idempotency_key_reused"
    member.refresh_from_db()
    assert member.points_balance == 50


def test_zero_points_and_manual_posting_without_reason_are_refused():
    member = MemberFactory()
    with pytest.raises(services.PointsRefused) as zero:
        services.points_post(member_id=member.pk, amount=0, kind=PointsEntry.Kind.WELCOME,
                             idempotency_key="z")
    with pytest.raises(services.PointsRefused) as no_reason:
        services.points_post(member_id=member.pk, amount=10, kind=PointsEntry.Kind.ADJUSTMENT,
                             idempotency_key="r", reason="   ")
    assert (zero.value.code, no_reason.value.code) == ("amount_zero", "reason_required")
    assert not PointsEntry.objects.exists()


def test_unknown_member_is_refused_clearly():
    with pytest.raises(services.PointsRefused) as refusal:
        services.points_post(member_id=987654, amount=10, kind=PointsEntry.Kind.WELCOME,
                             idempotency_key="ghost")
    assert refusal.value.code == "member_not_found"


def test_posting_inside_a_larger_transaction_rolls_back_with_it():
    member = MemberFactory()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.points_post(member_id=member.pk, amount=10, kind=PointsEntry.Kind.WELCOME,
                             idempotency_key="rolled-back")
        raise RuntimeError("caller failed after posting")
    member.refresh_from_db()
    assert member.points_balance == 0
    assert not PointsEntry.objects.exists()


# ------------------------------------------------------------------ blocked members


def test_blocked_member_can_neither_earn_nor_spend(support_user):
    member = MemberFactory()
    points_give(member, 200)
    services.member_status_change(member_id=member.pk, status=Member.Status.BLOCKED,
                                  reason="Card reported stolen", actor=support_user)
    for amount, kind in ((10, PointsEntry.Kind.WELCOME), (-10, PointsEntry.Kind.REDEMPTION)):
        with pytest.raises(services.PointsRefused) as refusal:
            services.points_post(member_id=member.pk, amount=amount, kind=kind,
                                 idempotency_key=f"blocked:{amount}")
        assert refusal.value.code == "member_not_active"
    member.refresh_from_db()
    assert member.points_balance == 200
    change = member.status_changes.get()
    assert (change.from_status, change.to_status) == ("active", "blocked")
    assert change.actor == support_user


def test_blocking_needs_a_reason(support_user):
    member = MemberFactory()
    with pytest.raises(services.PointsRefused):
        services.member_status_change(member_id=member.pk, status=Member.Status.BLOCKED,
                                      reason=" ", actor=support_user)
    member.refresh_from_db()
    assert member.status == Member.Status.ACTIVE
    assert not member.status_changes.exists()


# ------------------------------------------------------------------ append-only


def test_ledger_rows_cannot_be_changed_or_deleted():
    member = MemberFactory()
    entry = services.points_post(member_id=member.pk, amount=10, kind=PointsEntry.Kind.WELCOME,
                                 idempotency_key="fixed").entry
    entry = PointsEntry.objects.get(pk=entry.pk)
    entry.amount = 1000
    with pytest.raises(ValueError):
        entry.save()
    with pytest.raises(ValueError):
        entry.delete()
    # Even SQL that bypasses the model is refused by the database.
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        PointsEntry.objects.filter(pk=entry.pk).update(amount=1000)
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM members_pointsentry WHERE id = %s", [entry.pk])
    assert PointsEntry.objects.get(pk=entry.pk).amount == 10


def test_reversal_posts_the_opposite_once_and_keeps_the_original(support_user):
    member = MemberFactory()
    entry = services.points_post(member_id=member.pk, amount=40, kind=PointsEntry.Kind.WELCOME,
                                 idempotency_key="w").entry
    first = services.points_reverse(entry_id=entry.pk, reason="Posted twice by mistake",
                                    actor=support_user)
    again = services.points_reverse(entry_id=entry.pk, reason="Double click",
                                    actor=support_user)
    member.refresh_from_db()
    assert first.created and not again.created
    assert (first.entry.amount, first.entry.reverses_id) == (-40, entry.pk)
    assert member.points_balance == 0 == ledger_sum(member)
    assert PointsEntry.objects.filter(member=member).count() == 2
    with pytest.raises(services.PointsRefused) as refusal:
        services.points_reverse(entry_id=first.entry.pk, reason="undo", actor=support_user)
    assert refusal.value.code == "reversal_of_reversal"


def test_reversal_of_spent_points_is_refused_without_debt(support_user):
    member = MemberFactory()
    entry = services.points_post(member_id=member.pk, amount=40, kind=PointsEntry.Kind.WELCOME,
                                 idempotency_key="w").entry
    services.points_post(member_id=member.pk, amount=-30, kind=PointsEntry.Kind.REDEMPTION,
                         idempotency_key="spend")
    with pytest.raises(services.PointsRefused) as refusal:
        services.points_reverse(entry_id=entry.pk, reason="mistake", actor=support_user)
    assert refusal.value.code == "insufficient_points"
    # A return may leave a debt of exactly the spent amount; later accruals pay it off.
    debt = services.points_reverse(entry_id=entry.pk, reason="Purchase returned",
                                   actor=None, allow_debt=True)
    member.refresh_from_db()
    assert debt.entry.balance_after == -30 == member.points_balance
    services.points_post(member_id=member.pk, amount=50, kind=PointsEntry.Kind.ACCRUAL,
                         idempotency_key="after-debt")
    member.refresh_from_db()
    assert member.points_balance == 20 == ledger_sum(member)


# ------------------------------------------------------------------ concurrency


@pytest.mark.django_db(transaction=True)
def test_twenty_clerks_adjusting_one_balance_lose_no_update():
    member = MemberFactory()
    points_give(member, 1000, key="start")

    def work(i: int):
        amount = 25 if i % 2 == 0 else -15
        return services.points_post(
            member_id=member.pk, amount=amount, kind=PointsEntry.Kind.ADJUSTMENT,
            reason=f"clerk {i}", idempotency_key=f"clerk:{i}",
        )

    results = run_in_threads(20, work)
    assert all(isinstance(result, services.Posting) for result in results), results
    member.refresh_from_db()
    assert member.points_balance == 1000 + 10 * 25 - 10 * 15 == ledger_sum(member)
    # Every posting saw the one before it: the balance_after chain has no gap.
    running = 0
    for amount, balance_after in PointsEntry.objects.filter(member=member).order_by(
        "id"
    ).values_list("amount", "balance_after"):
        running += amount
        assert balance_after == running
    assert not list(ledger_mismatches())


@pytest.mark.django_db(transaction=True)
def test_concurrent_debits_never_take_the_balance_below_zero():
    member = MemberFactory()
    points_give(member, 100, key="start")

    def work(i: int):
        return services.points_post(
            member_id=member.pk, amount=-30, kind=PointsEntry.Kind.REDEMPTION,
            idempotency_key=f"debit:{i}",
        )

    results = run_in_threads(10, work)
    posted = [r for r in results if isinstance(r, services.Posting)]
    refused = [r for r in results if isinstance(r, services.PointsRefused)]
    assert (len(posted), len(refused)) == (3, 7)
    member.refresh_from_db()
    assert member.points_balance == 10 == ledger_sum(member)


@pytest.mark.django_db(transaction=True)
def test_same_key_delivered_twice_at_once_posts_once():
    member = MemberFactory()

    def work(i: int):
        return services.points_post(
            member_id=member.pk, amount=70, kind=PointsEntry.Kind.ACCRUAL,
            idempotency_key="purchase:duplicate-delivery",
        )

    results = run_in_threads(8, work)
    assert all(isinstance(result, services.Posting) for result in results), results
    assert sum(result.created for result in results) == 1
    member.refresh_from_db()
    assert member.points_balance == 70
    assert PointsEntry.objects.filter(member=member).count() == 1


# ------------------------------------------------------------------ maker-checker


@pytest.fixture
def threshold_500():
    settings_row = programme_settings_get()
    settings_row.adjustment_approval_threshold = 500
    settings_row.save()


def test_small_adjustment_applies_at_once(support_user, threshold_500):
    member = MemberFactory()
    adjustment = services.points_adjust(member_id=member.pk, amount=500, reason="Goodwill",
                                        actor=support_user, idempotency_key="form:a")
    member.refresh_from_db()
    assert adjustment.status == PointsAdjustment.Status.APPLIED
    assert member.points_balance == 500
    assert adjustment.entry.actor == support_user and adjustment.entry.reason == "Goodwill"


def test_adjustment_form_submitted_twice_adjusts_once(support_user):
    member = MemberFactory()
    for _ in range(2):
        services.points_adjust(member_id=member.pk, amount=100, reason="Goodwill",
                               actor=support_user, idempotency_key="form:double-click")
    member.refresh_from_db()
    assert member.points_balance == 100
    assert PointsAdjustment.objects.count() == 1


def test_large_adjustment_waits_for_a_different_person(
    support_user, second_support_user, threshold_500
):
    member = MemberFactory()
    adjustment = services.points_adjust(member_id=member.pk, amount=501, reason="Lost receipt",
                                        actor=support_user, idempotency_key="form:big")
    member.refresh_from_db()
    assert adjustment.status == PointsAdjustment.Status.PENDING
    assert member.points_balance == 0 and not PointsEntry.objects.exists()

    with pytest.raises(services.PointsRefused) as own:
        services.points_adjustment_approve(adjustment_id=adjustment.pk, actor=support_user)
    assert own.value.code == "maker_cannot_approve"
    member.refresh_from_db()
    assert member.points_balance == 0

    approved = services.points_adjustment_approve(adjustment_id=adjustment.pk,
                                                  actor=second_support_user, note="Checked")
    member.refresh_from_db()
    assert approved.status == PointsAdjustment.Status.APPLIED
    assert approved.decided_by == second_support_user
    assert member.points_balance == 501 == ledger_sum(member)

    with pytest.raises(services.PointsRefused) as twice:
        services.points_adjustment_approve(adjustment_id=adjustment.pk,
                                           actor=second_support_user)
    assert twice.value.code == "already_decided"
    member.refresh_from_db()
    assert member.points_balance == 501


def test_rejected_adjustment_moves_no_points(support_user, second_support_user, threshold_500):
    member = MemberFactory()
    points_give(member, 1000, key="start")
    adjustment = services.points_adjust(member_id=member.pk, amount=-900, reason="Fraud",
                                        actor=support_user, idempotency_key="form:neg")
    services.points_adjustment_reject(adjustment_id=adjustment.pk, actor=second_support_user,
                                      note="Not fraud")
    member.refresh_from_db()
    adjustment.refresh_from_db()
    assert adjustment.status == PointsAdjustment.Status.REJECTED
    assert member.points_balance == 1000


def test_approval_needs_the_approve_permission(support_user, analyst_user, threshold_500):
    member = MemberFactory()
    adjustment = services.points_adjust(member_id=member.pk, amount=800, reason="Lost receipt",
                                        actor=support_user, idempotency_key="form:perm")
    with pytest.raises(PermissionDenied):
        services.points_adjustment_approve(adjustment_id=adjustment.pk, actor=analyst_user)
    adjustment.refresh_from_db()
    assert adjustment.status == PointsAdjustment.Status.PENDING


def test_database_refuses_a_maker_approving_their_own_adjustment(support_user, threshold_500):
    member = MemberFactory()
    adjustment = services.points_adjust(member_id=member.pk, amount=800, reason="Lost receipt",
                                        actor=support_user, idempotency_key="form:db")
    adjustment.decided_by = support_user
    with pytest.raises(IntegrityError), transaction.atomic():
        adjustment.save(update_fields=["decided_by"])


def test_large_debit_beyond_the_balance_is_refused_when_asked(support_user, threshold_500):
    member = MemberFactory()
    with pytest.raises(services.PointsRefused) as refusal:
        services.points_adjust(member_id=member.pk, amount=-800, reason="Fraud",
                               actor=support_user, idempotency_key="form:nothing")
    assert refusal.value.code == "insufficient_points"
    assert not PointsAdjustment.objects.exists()


# ------------------------------------------------------------------ invariant check


def test_ledger_verify_passes_and_names_members_on_mismatch(capsys):
    healthy, broken = MemberFactory(), MemberFactory(card_number="2999999999999")
    points_give(healthy, 10, key="h")
    points_give(broken, 10, key="b")
    call_command("ledger_verify")
    assert "Ledger OK" in capsys.readouterr().out
    # Simulate a write that bypassed the ledger service.
    Member.objects.filter(pk=broken.pk).update(points_balance=999)
    with pytest.raises(CommandError):
        call_command("ledger_verify")
    err = capsys.readouterr().err
    assert "2999999999999" in err and "balance 999 but ledger sum 10" in err
    assert str(healthy.card_number) not in err
