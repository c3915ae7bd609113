"""Writes that carry the rules of members, purchases and the points ledger.

Every function here runs in one transaction and takes keyword arguments only; the
admin, imports and tasks call these and never write the tables themselves.
"""

from __future__ import annotations

# The ledger's SQL is assembled from the module's table names and constant conditions;
# every value is a query parameter.
# ruff: noqa: S608
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.models import (
    Member,
    MemberStatusChange,
    PointsAdjustment,
    PointsEntry,
    Purchase,
    PurchaseLine,
    PurchaseRefund,
)
from members.postgres import arrays_execute, ids_reserve, rows_copy
from members.selectors import points_pending_get, programme_settings_get

# Messages are constants so that tests and screens agree on them.
MEMBER_NOT_FOUND = _("This member does not exist.")
MEMBER_NOT_ACTIVE = _(
    "The member is %(status)s: a blocked or closed member can neither earn nor spend points."
)
POINTS_INSUFFICIENT = _(
    "Not enough points: the balance is %(balance)s and this would take away %(debit)s. "
    "A balance cannot go below zero."
)
POINTS_INSUFFICIENT_PENDING = _(
    "Not enough points: %(balance)s are available (%(pending)s more are pending until their "
    "return window ends) and this would take away %(debit)s."
)
POINTS_ZERO = _("Enter a number of points other than zero.")
REASON_REQUIRED = _("Give a reason: every manual change of points must say why.")
IDEMPOTENCY_KEY_REUSED = _(
    "This request was already used for a different points movement; reload the page and "
    "try again."
)
REVERSAL_OF_REVERSAL = _("A reversal cannot itself be reversed; post an adjustment instead.")
ADJUSTMENT_DECIDED = _("This adjustment was already %(status)s.")
MAKER_CANNOT_APPROVE = _(
    "You asked for this adjustment, so someone else must approve or reject it."
)
APPROVAL_NOT_ALLOWED = _("You are not allowed to approve points adjustments.")
STATUS_UNCHANGED = _("The member is already %(status)s.")


class PointsRefused(Exception):
    """A points movement or member change that the rules refuse; nothing was written."""

    def __init__(self, message, *, code: str, params: dict | None = None):
        self.message = message
        self.code = code
        self.params = params or {}
        super().__init__(str(self))

    def __str__(self) -> str:
        return str(self.message) % self.params if self.params else str(self.message)


class _DuplicateOrRefused(Exception):
    """The balance UPDATE matched no row: a repeated key, or a refusal to explain."""


@dataclass(frozen=True)
class Posting:
    """The ledger row a posting produced, and whether this call created it."""

    entry: PointsEntry
    created: bool


# Kinds that may move a blocked or closed member's points: corrections and expiry are
# not earning or spending.
_STATUS_EXEMPT_KINDS = (
    PointsEntry.Kind.REVERSAL, PointsEntry.Kind.EXPIRY, PointsEntry.Kind.RETURN,
)

_MEMBER_TABLE = Member._meta.db_table
_LEDGER_TABLE = PointsEntry._meta.db_table


def points_post(
    *,
    member_id: int,
    amount: int,
    kind: str,
    idempotency_key: str,
    reason: str = "",
    actor: AbstractBaseUser | None = None,
    purchase_id: int | None = None,
    reverses_id: int | None = None,
    reference: str = "",
    allow_debt: bool = False,
    posted_at: datetime | None = None,
    available_at: datetime | None = None,
    details: list | None = None,
) -> Posting:
    """Post one movement of points to a member's ledger.

    With :func:`points_post_batch` (the same rules for many movements at once) this is
    the only code that writes ledger rows.

    The UPDATE takes the member's row lock, checks the status and the balance in its
    WHERE clause and returns the new balance; the ledger row is inserted in the same
    transaction, so the cached balance always equals the ledger's sum. A debit may
    spend only available points: the balance less what is still pending. A second call
    with the same ``idempotency_key`` writes nothing and returns the first row
    (``created`` is False). ``allow_debt`` lets a return's reversal take the balance
    below zero. ``available_at`` keeps an accrual pending until then; ``details`` says
    how it was computed. Raise :class:`PointsRefused` when the rules refuse; nothing is
    written.
    """
    if amount == 0:
        raise PointsRefused(POINTS_ZERO, code="amount_zero")
    reason = (reason or "").strip()
    if kind in PointsEntry.MANUAL_KINDS and not reason:
        raise PointsRefused(REASON_REQUIRED, code="reason_required")
    posted_at = posted_at or timezone.now()

    # One UPDATE instead of SELECT ... FOR UPDATE + UPDATE: the row lock, the checks and
    # the new balance at once (READ COMMITTED re-checks WHERE after waiting for a lock).
    greatest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    conditions, update_params = ["id = %s"], [amount, member_id]
    if kind not in _STATUS_EXEMPT_KINDS:
        conditions.append("status = 'active'")
    if amount < 0 and not allow_debt:
        # Pending accruals (still in their return window) cannot be spent.
        conditions.append(
            f"points_balance + %s - {greatest}(0, (SELECT COALESCE(SUM(amount), 0) "
            f"FROM {_LEDGER_TABLE} WHERE member_id = %s AND available_at > %s)) >= 0"
        )
        update_params += [amount, member_id, connection.ops.adapt_datetimefield_value(posted_at)]
    # Table names and conditions are module constants; every value is a parameter.
    update_sql = (
        f"UPDATE {_MEMBER_TABLE} SET points_balance = points_balance + %s "
        f"WHERE {' AND '.join(conditions)} RETURNING id, points_balance"
    )
    columns = (
        "member_id, balance_after, kind, amount, reason, actor_id, purchase_id, reverses_id, "
        "reference, idempotency_key, created_at, available_at, details"
    )
    actor_id = actor.pk if actor is not None else None
    values = [
        kind, amount, reason, actor_id, purchase_id, reverses_id, reference, idempotency_key,
        connection.ops.adapt_datetimefield_value(posted_at),
        connection.ops.adapt_datetimefield_value(available_at),
        json.dumps(details or [], cls=DjangoJSONEncoder),
    ]
    placeholders = ", ".join(["%s"] * len(values))
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # One round trip: the locked UPDATE feeds the INSERT (no row: refused).
                cursor.execute(
                    f"WITH m AS ({update_sql}) INSERT INTO {_LEDGER_TABLE} ({columns}) "
                    f"SELECT m.id, m.points_balance, {placeholders} FROM m "
                    "RETURNING id, balance_after",
                    update_params + values,
                )
                row = cursor.fetchone()
                if row is None:
                    raise _DuplicateOrRefused
                entry_id, balance_after = row
            else:
                cursor.execute(update_sql, update_params)
                row = cursor.fetchone()
                if row is None:
                    raise _DuplicateOrRefused
                balance_after = row[1]
                cursor.execute(
                    f"INSERT INTO {_LEDGER_TABLE} ({columns}) "
                    f"VALUES (%s, %s, {placeholders}) RETURNING id",
                    [member_id, balance_after, *values],
                )
                entry_id = cursor.fetchone()[0]
    except (IntegrityError, _DuplicateOrRefused) as error:
        # Same key delivered twice (perhaps at the same time): the first one stands, even
        # when the balance has moved since; otherwise explain the refusal.
        existing = PointsEntry.objects.filter(idempotency_key=idempotency_key).first()
        if existing is None:
            if isinstance(error, _DuplicateOrRefused):
                _points_refusal_raise(member_id=member_id, amount=amount, at=posted_at)
            raise
        if (existing.member_id, existing.amount, existing.kind) != (member_id, amount, kind):
            raise PointsRefused(IDEMPOTENCY_KEY_REUSED, code="idempotency_key_reused") from None
        return Posting(entry=existing, created=False)

    entry = PointsEntry(
        id=entry_id, member_id=member_id, kind=kind, amount=amount,
        balance_after=balance_after, reason=reason, actor_id=actor_id,
        purchase_id=purchase_id, reverses_id=reverses_id, reference=reference,
        idempotency_key=idempotency_key, created_at=posted_at, available_at=available_at,
        details=details or [],
    )
    entry._state.adding = False
    entry._state.db = connection.alias
    return Posting(entry=entry, created=True)


def _points_refusal_raise(*, member_id: int, amount: int, at: datetime | None = None) -> None:
    """Raise the refusal that explains why the balance UPDATE matched no row."""
    member = Member.objects.filter(id=member_id).values("status", "points_balance").first()
    if member is None:
        raise PointsRefused(MEMBER_NOT_FOUND, code="member_not_found")
    if member["status"] != Member.Status.ACTIVE:
        raise PointsRefused(
            MEMBER_NOT_ACTIVE, code="member_not_active",
            params={"status": Member.Status(member["status"]).label.lower()},
        )
    pending = points_pending_get(member_id=member_id, at=at)
    if pending:
        raise PointsRefused(
            POINTS_INSUFFICIENT_PENDING, code="insufficient_points",
            params={"balance": member["points_balance"] - pending, "pending": pending,
                    "debit": -amount},
        )
    raise PointsRefused(
        POINTS_INSUFFICIENT, code="insufficient_points",
        params={"balance": member["points_balance"], "debit": -amount},
    )


def points_reverse(
    *, entry_id: int, reason: str, actor: AbstractBaseUser | None, allow_debt: bool = False
) -> Posting:
    """Cancel a ledger row by posting its opposite; a row is reversed at most once.

    Reversing the same row again returns the first reversal (``created`` False).
    """
    entry = PointsEntry.objects.get(id=entry_id)
    if entry.kind == PointsEntry.Kind.REVERSAL:
        raise PointsRefused(REVERSAL_OF_REVERSAL, code="reversal_of_reversal")
    return points_post(
        member_id=entry.member_id,
        amount=-entry.amount,
        kind=PointsEntry.Kind.REVERSAL,
        idempotency_key=f"reversal:{entry.id}",
        reason=reason,
        actor=actor,
        reverses_id=entry.id,
        reference=f"entry:{entry.id}",
        allow_debt=allow_debt,
    )


def points_adjust(
    *,
    member_id: int,
    amount: int,
    reason: str,
    actor: AbstractBaseUser,
    idempotency_key: str,
) -> PointsAdjustment:
    """Adjust a member's points by hand, or queue the request for a second person.

    Adjustments larger than the programme's approval threshold are stored as pending
    and touch no balance until :func:`points_adjustment_approve`. The same
    ``idempotency_key`` (one per form shown) returns the first request, so a double
    click adjusts once. Raise :class:`PointsRefused` when the rules refuse.
    """
    if amount == 0:
        raise PointsRefused(POINTS_ZERO, code="amount_zero")
    reason = (reason or "").strip()
    if not reason:
        raise PointsRefused(REASON_REQUIRED, code="reason_required")
    existing = PointsAdjustment.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing

    threshold = programme_settings_get().adjustment_approval_threshold
    try:
        with transaction.atomic():
            adjustment = PointsAdjustment.objects.create(
                member_id=member_id, amount=amount, reason=reason, requested_by=actor,
                idempotency_key=idempotency_key,
            )
            if abs(amount) > threshold:
                _adjustment_precheck(member_id=member_id, amount=amount)
                return adjustment
            _adjustment_apply(adjustment=adjustment, decided_by=None)
    except IntegrityError:
        existing = PointsAdjustment.objects.filter(idempotency_key=idempotency_key).first()
        if existing is None:
            raise
        return existing
    return adjustment


def _adjustment_precheck(*, member_id: int, amount: int) -> None:
    """Refuse a pending request now that could never be applied as it stands."""
    member = Member.objects.filter(id=member_id).values("status", "points_balance").first()
    if member is None:
        raise PointsRefused(MEMBER_NOT_FOUND, code="member_not_found")
    if member["status"] != Member.Status.ACTIVE:
        _points_refusal_raise(member_id=member_id, amount=amount)
    available = member["points_balance"] - points_pending_get(member_id=member_id)
    if amount < 0 and available + amount < 0:
        _points_refusal_raise(member_id=member_id, amount=amount)


def _adjustment_apply(*, adjustment: PointsAdjustment, decided_by) -> None:
    """Post an adjustment's ledger row and mark it applied (inside the caller's transaction)."""
    posting = points_post(
        member_id=adjustment.member_id,
        amount=adjustment.amount,
        kind=PointsEntry.Kind.ADJUSTMENT,
        idempotency_key=f"adjustment:{adjustment.id}",
        reason=adjustment.reason,
        actor=adjustment.requested_by,
        reference=f"adjustment:{adjustment.id}",
    )
    adjustment.status = PointsAdjustment.Status.APPLIED
    adjustment.entry = posting.entry
    adjustment.decided_by = decided_by
    adjustment.decided_at = timezone.now()
    adjustment.save(update_fields=["status", "entry", "decided_by", "decided_at"])


def _adjustment_decidable_get(*, adjustment_id: int, actor) -> PointsAdjustment:
    """Lock and return a pending adjustment that ``actor`` may decide, or raise."""
    if not actor.has_perm("members.approve_adjustment"):
        raise PermissionDenied(APPROVAL_NOT_ALLOWED)
    adjustment = PointsAdjustment.objects.select_for_update().get(id=adjustment_id)
    if adjustment.status != PointsAdjustment.Status.PENDING:
        raise PointsRefused(
            ADJUSTMENT_DECIDED, code="already_decided",
            params={"status": adjustment.get_status_display().lower()},
        )
    if adjustment.requested_by_id == actor.pk:
        raise PointsRefused(MAKER_CANNOT_APPROVE, code="maker_cannot_approve")
    return adjustment


def points_adjustment_approve(
    *, adjustment_id: int, actor: AbstractBaseUser, note: str = ""
) -> PointsAdjustment:
    """Approve a pending adjustment as the second person and post it to the ledger.

    Raise :class:`PointsRefused` if it was decided already, if ``actor`` asked for it,
    or if the ledger refuses it now (e.g. the points were spent meanwhile).
    """
    with transaction.atomic():
        adjustment = _adjustment_decidable_get(adjustment_id=adjustment_id, actor=actor)
        adjustment.decision_note = (note or "").strip()
        adjustment.save(update_fields=["decision_note"])
        _adjustment_apply(adjustment=adjustment, decided_by=actor)
    return adjustment


def points_adjustment_reject(
    *, adjustment_id: int, actor: AbstractBaseUser, note: str = ""
) -> PointsAdjustment:
    """Reject a pending adjustment; no points move."""
    with transaction.atomic():
        adjustment = _adjustment_decidable_get(adjustment_id=adjustment_id, actor=actor)
        adjustment.status = PointsAdjustment.Status.REJECTED
        adjustment.decided_by = actor
        adjustment.decided_at = timezone.now()
        adjustment.decision_note = (note or "").strip()
        adjustment.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    return adjustment


def member_status_change(
    *, member_id: int, status: str, reason: str, actor: AbstractBaseUser | None
) -> MemberStatusChange:
    """Block, unblock or close a member, with a reason kept in the status history."""
    reason = (reason or "").strip()
    if not reason:
        raise PointsRefused(REASON_REQUIRED, code="reason_required")
    with transaction.atomic():
        member = Member.objects.select_for_update().only("id", "status").get(id=member_id)
        if member.status == status:
            raise PointsRefused(
                STATUS_UNCHANGED, code="status_unchanged",
                params={"status": Member.Status(status).label.lower()},
            )
        change = MemberStatusChange.objects.create(
            member=member, from_status=member.status, to_status=status, reason=reason,
            actor=actor,
        )
        member.status = status
        member.save(update_fields=["status", "updated_at"])
    return change


def member_save(
    *, member: Member, changed_fields: list[str] | tuple = (), actor: AbstractBaseUser | None
) -> Member:
    """Validate and save a member's profile, stamping when each consent changed.

    Status and points are not saved from here: they move only through
    :func:`member_status_change` and :func:`points_post`.
    """
    now = timezone.now()
    for consent in ("email_consent", "sms_consent"):
        if consent in changed_fields or (member._state.adding and getattr(member, consent)):
            setattr(member, f"{consent}_at", now)
    member.email = (member.email or "").strip().lower()
    member.full_clean()
    if member._state.adding:
        member.save()
    else:
        member.save(update_fields=[
            name for name in (
                "card_number", "first_name", "last_name", "email", "phone", "birth_date",
                "gender", "city", "enrolled_at", "source_channel", "referred_by",
                "email_consent", "email_consent_at", "sms_consent", "sms_consent_at",
                "updated_at",
            )
        ])
    return member


@dataclass(frozen=True)
class PurchaseLineData:
    """One receipt line as the cash register sends it."""

    sku: str
    amount: Decimal
    quantity: Decimal = Decimal(1)
    category_id: int | None = None


@dataclass(frozen=True)
class PurchaseCreation:
    """The purchase, and whether this call created it (False: it was recorded before)."""

    purchase: Purchase
    created: bool


def purchase_create(
    *,
    store_id: int,
    receipt_number: str,
    total: Decimal,
    purchased_at: datetime | None = None,
    member_id: int | None = None,
    discount: Decimal = Decimal(0),
    channel: str = Purchase.Channel.STORE,
    lines: list[PurchaseLineData] | tuple = (),
) -> PurchaseCreation:
    """Record a receipt with its lines, exactly once per store and receipt number.

    Moves no points: :func:`rewards.services.purchase_record` calls this and then
    applies the programme's earning rules. The same receipt again returns the first
    purchase with ``created`` False.
    """
    purchased_at = purchased_at or timezone.now()
    with transaction.atomic():
        try:
            with transaction.atomic():
                purchase = Purchase.objects.create(
                    store_id=store_id, receipt_number=receipt_number, member_id=member_id,
                    channel=channel, purchased_at=purchased_at, total=Decimal(total),
                    discount=discount,
                    item_count=int(sum((line.quantity for line in lines), Decimal(0))),
                )
        except IntegrityError:
            existing = Purchase.objects.filter(
                store_id=store_id, receipt_number=receipt_number
            ).first()
            if existing is None:
                raise
            return PurchaseCreation(purchase=existing, created=False)
        PurchaseLine.objects.bulk_create(
            PurchaseLine(
                purchase=purchase, sku=line.sku, category_id=line.category_id,
                quantity=line.quantity, amount=line.amount,
            )
            for line in lines
        )
        if member_id is not None:
            members_last_purchase_advance({member_id: purchased_at})
    return PurchaseCreation(purchase=purchase, created=True)


REFUND_TOO_LARGE = _(
    "The refund of %(amount)s would exceed what is left of the receipt (%(left)s)."
)
REFUND_NOT_POSITIVE = _("Enter a refund amount greater than zero.")


def purchase_refund(
    *,
    purchase_id: int,
    amount: Decimal,
    refund_key: str,
    reason: str = "",
    actor: AbstractBaseUser | None = None,
) -> PurchaseRefund:
    """Record a return and reverse the receipt's points in proportion to the money refunded.

    Cumulative: after refunds of R out of a total T, exactly round(E × R / T) of the E
    points earned have been taken back. If those points were already spent the balance
    goes below zero by that much (a debt later accruals pay off). A points reversal of
    a pending accrual stays pending with it. The same ``refund_key`` again returns the
    first refund.
    """
    amount = Decimal(amount)
    if amount <= 0:
        raise PointsRefused(REFUND_NOT_POSITIVE, code="refund_not_positive")
    existing = PurchaseRefund.objects.filter(refund_key=refund_key).first()
    if existing is not None:
        return existing
    with transaction.atomic():
        purchase = Purchase.objects.select_for_update().get(id=purchase_id)
        left = purchase.total - purchase.refunded_total
        if amount > left:
            raise PointsRefused(
                REFUND_TOO_LARGE, code="refund_too_large",
                params={"amount": amount, "left": left},
            )
        refund = PurchaseRefund.objects.create(
            purchase=purchase, amount=amount, reason=(reason or "").strip(),
            refund_key=refund_key, actor=actor,
        )
        Purchase.objects.filter(id=purchase.id).update(refunded_total=F("refunded_total") + amount)
        accruals = list(
            PointsEntry.objects.filter(purchase_id=purchase.id, kind=PointsEntry.Kind.ACCRUAL)
        )
        earned = sum(entry.amount for entry in accruals)
        if purchase.member_id is None or earned <= 0 or purchase.total <= 0:
            return refund
        returned = -sum(
            PointsEntry.objects.filter(
                purchase_id=purchase.id, kind=PointsEntry.Kind.RETURN
            ).values_list("amount", flat=True)
        )
        refunded = purchase.refunded_total + amount
        due = int((Decimal(earned) * refunded / purchase.total).to_integral_value(ROUND_HALF_UP))
        points = min(due, earned) - returned
        if points > 0:
            posting = points_post(
                member_id=purchase.member_id, amount=-points, kind=PointsEntry.Kind.RETURN,
                idempotency_key=f"refund:{refund.id}", actor=actor, purchase_id=purchase.id,
                reference=f"refund:{refund.id}", reason=refund.reason, allow_debt=True,
                available_at=max((e.available_at for e in accruals if e.available_at),
                                 default=None),
            )
            refund.entry = posting.entry
            refund.save(update_fields=["entry"])
    return refund




@dataclass(frozen=True)
class PostingRequest:
    """One movement for :func:`points_post_batch`; the fields mean what they mean in
    :func:`points_post`."""

    member_id: int
    amount: int
    kind: str
    idempotency_key: str
    reason: str = ""
    purchase_id: int | None = None
    reference: str = ""
    allow_debt: bool = False
    posted_at: datetime | None = None
    available_at: datetime | None = None
    details: list | None = None


def members_lock(member_ids: list[int]) -> list[tuple[int, str, int]]:
    """Lock these members' rows in id order (the order every batch locks in, so two
    never wait on each other in a circle); return (id, status, points balance) of each.

    On PostgreSQL the ids travel as one array bound by the server.
    """
    if connection.vendor == "postgresql":
        return arrays_execute(
            f"SELECT id, status, points_balance FROM {_MEMBER_TABLE} "
            "WHERE id = ANY(%s::bigint[]) ORDER BY id FOR UPDATE",
            [sorted(member_ids)],
        )
    return list(Member.objects.select_for_update().filter(id__in=member_ids)
                .order_by("id").values_list("id", "status", "points_balance"))


def points_post_batch(
    *,
    requests: list[PostingRequest],
    actor: AbstractBaseUser | None = None,
    last_purchases: Mapping[int, datetime] | None = None,
) -> list[Posting | PointsRefused]:
    """Post many movements at once, with exactly the rules of :func:`points_post`.

    For nightly jobs and imports: the members involved are locked in id order (so two
    batches never deadlock), the rules are checked against the locked balances in the
    order given, and the accepted rows are inserted and the balances updated in a few
    statements for the whole batch, in one transaction. Return, per request and in
    order, its :class:`Posting` (``created`` False for a key posted before) or the
    :class:`PointsRefused` that explains why nothing was written for it.

    ``last_purchases`` (member id: time of a purchase being recorded) moves those
    members' last purchase time forward in the same UPDATE as the balances, as
    :func:`members_last_purchase_advance` would: one new version of each member row
    instead of two, for a batch of receipts.
    """
    if not requests:
        return []
    now = timezone.now()
    results: list[Posting | PointsRefused | None] = [None] * len(requests)
    # No savepoint of its own inside a caller's transaction: an import of a hundred
    # batches would otherwise open a hundred more subtransactions.
    with transaction.atomic(savepoint=False):
        member_ids = sorted({request.member_id for request in requests})
        keys = [request.idempotency_key for request in requests]
        if connection.vendor == "postgresql":
            # Thousands of keys as one array bound by the server: quoting them one by one
            # into the SQL cost more than running the statement.
            posted = [pk for (pk,) in arrays_execute(
                f"SELECT id FROM {_LEDGER_TABLE} WHERE idempotency_key = ANY(%s::text[])",
                [keys],
            )]
            before = PointsEntry.objects.filter(id__in=posted) if posted else ()
        else:
            before = PointsEntry.objects.filter(idempotency_key__in=keys)
        locked = {
            member_id: [status, balance]
            for member_id, status, balance in members_lock(member_ids)
        }
        existing = {entry.idempotency_key: entry for entry in before}
        debits = {r.member_id for r in requests if r.amount < 0 and not r.allow_debt}
        # Raw sums of pending amounts; rows accepted in this batch add to them below.
        pending = {
            row["member_id"]: row["total"] or 0
            for row in PointsEntry.objects.filter(member_id__in=debits, available_at__gt=now)
            .values("member_id").annotate(total=Sum("amount"))
        } if debits else {}
        entries, seen = [], {}
        actor_id = actor.pk if actor is not None else None
        for index, request in enumerate(requests):
            key = request.idempotency_key
            if key in existing or key in seen:
                first = existing.get(key) or seen[key]
                same = (first.member_id, first.amount, first.kind) == (
                    request.member_id, request.amount, request.kind
                )
                results[index] = (
                    Posting(entry=first, created=False) if same
                    else PointsRefused(IDEMPOTENCY_KEY_REUSED, code="idempotency_key_reused")
                )
                continue
            reason = (request.reason or "").strip()
            refusal = None
            member = locked.get(request.member_id)
            if request.amount == 0:
                refusal = PointsRefused(POINTS_ZERO, code="amount_zero")
            elif request.kind in PointsEntry.MANUAL_KINDS and not reason:
                refusal = PointsRefused(REASON_REQUIRED, code="reason_required")
            elif member is None:
                refusal = PointsRefused(MEMBER_NOT_FOUND, code="member_not_found")
            elif request.kind not in _STATUS_EXEMPT_KINDS and member[0] != Member.Status.ACTIVE:
                refusal = PointsRefused(
                    MEMBER_NOT_ACTIVE, code="member_not_active",
                    params={"status": Member.Status(member[0]).label.lower()},
                )
            elif request.amount < 0 and not request.allow_debt:
                available = member[1] - max(0, pending.get(request.member_id, 0))
                if available + request.amount < 0:
                    refusal = PointsRefused(
                        POINTS_INSUFFICIENT, code="insufficient_points",
                        params={"balance": available, "debit": -request.amount},
                    )
            if refusal is not None:
                results[index] = refusal
                continue
            member[1] += request.amount
            # Positional, in _ENTRY_COLUMNS order: Django's fast path (4 µs a row, not 16).
            entry = PointsEntry(
                None, request.member_id, request.kind, request.amount, member[1], reason,
                actor_id, request.purchase_id, None, request.reference, key,
                request.posted_at or now, request.available_at, request.details or [],
            )
            entries.append((index, entry))
            seen[key] = entry
            if request.available_at is not None and request.available_at > now:
                pending[request.member_id] = pending.get(request.member_id, 0) + request.amount
        _entries_write([entry for _index, entry in entries])
        changed = sorted({entry.member_id for _index, entry in entries})
        _members_write(
            balances={member_id: locked[member_id][1] for member_id in changed},
            last_purchases=last_purchases or {},
        )
        for index, entry in entries:
            results[index] = Posting(entry=entry, created=True)
    return results


# The ledger's columns in the model's field order, as COPY writes them and as
# PointsEntry(*values) takes them (every column: COPY applies no model defaults).
_ENTRY_COLUMNS = (
    "id", "member_id", "kind", "amount", "balance_after", "reason", "actor_id",
    "purchase_id", "reverses_id", "reference", "idempotency_key", "created_at",
    "available_at", "details",
)


def _entries_write(entries: list[PointsEntry]) -> None:
    """Insert a batch's ledger rows in their order (ids ascending, so ``balance_after``
    reads in id order as the rows were posted)."""
    if not entries:
        return
    if connection.vendor != "postgresql":
        PointsEntry.objects.bulk_create(entries, batch_size=2000)
        return
    # COPY with ids drawn from the sequence first: no RETURNING to match rows up, and
    # no Django model machinery per row (a third of an import's time went there).
    for entry, pk in zip(entries, ids_reserve(PointsEntry, len(entries)), strict=True):
        entry.pk = pk
    encoder = DjangoJSONEncoder()
    rows_copy(PointsEntry, _ENTRY_COLUMNS, (
        (entry.pk, entry.member_id, entry.kind, entry.amount, entry.balance_after,
         entry.reason, entry.actor_id, entry.purchase_id, entry.reverses_id, entry.reference,
         entry.idempotency_key, entry.created_at, entry.available_at,
         encoder.encode(entry.details))
        for entry in entries
    ))


def _members_write(
    *, balances: Mapping[int, int], last_purchases: Mapping[int, datetime]
) -> None:
    """Set the cached balances of the members a batch posted to (rows already locked)
    and move the last purchase times forward, in one statement on PostgreSQL."""
    if not balances and not last_purchases:
        return
    if connection.vendor != "postgresql":
        Member.objects.bulk_update(
            [Member(id=member_id, points_balance=balance)
             for member_id, balance in balances.items()],
            ["points_balance"], batch_size=2000,
        )
        members_last_purchase_advance(last_purchases)
        return
    # One statement; Django's bulk_update would build a CASE with a branch per member.
    member_ids = sorted(set(balances) | set(last_purchases))
    arrays_execute(
        f"UPDATE {_MEMBER_TABLE} m SET "
        "points_balance = COALESCE(v.balance, m.points_balance), "
        "last_purchase_at = GREATEST(m.last_purchase_at, v.at) "
        "FROM unnest(%s::bigint[], %s::integer[], %s::timestamptz[]) AS v(id, balance, at) "
        "WHERE m.id = v.id",
        [member_ids, [balances.get(member_id) for member_id in member_ids],
         [last_purchases.get(member_id) for member_id in member_ids]],
    )


def members_last_purchase_advance(last_purchases: Mapping[int, datetime]) -> None:
    """Move each member's last purchase time forward to the time given, never back
    (one statement on PostgreSQL, for a receipt or a batch of them)."""
    if not last_purchases:
        return
    member_ids = sorted(last_purchases)
    if connection.vendor == "postgresql":
        arrays_execute(
            f"UPDATE {_MEMBER_TABLE} m SET last_purchase_at = GREATEST(m.last_purchase_at, "
            "v.at) FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, at) "
            "WHERE m.id = v.id",
            [member_ids, [last_purchases[member_id] for member_id in member_ids]],
        )
        return
    for member_id in member_ids:
        at = last_purchases[member_id]
        Member.objects.filter(id=member_id).update(
            last_purchase_at=Greatest(Coalesce(F("last_purchase_at"), Value(at)), Value(at))
        )


def points_expire_due(*, as_of: datetime | None = None) -> int:
    """Write off every member's expired points as expiry entries (the nightly job).

    The amounts come from one aggregate over the ledger
    (:func:`members.selectors.points_expiry_due`) and are posted in batches of a
    thousand members, each with the key ``expiry:<member>:<date>``, so running twice on
    one day posts once. Return how many members had points expire.
    """
    from members.selectors import points_expiry_due

    as_of = as_of or timezone.now()
    day = timezone.localdate(as_of).isoformat()
    # Everything that expires during the run's day is written off at once, so a rerun
    # later that day finds nothing new under the same per-day key.
    due_at = timezone.localtime(as_of).replace(hour=0, minute=0, second=0, microsecond=0)
    due_at += timedelta(days=1)
    posted = 0
    batch: list[PostingRequest] = []

    def flush() -> int:
        results = points_post_batch(requests=batch)
        batch.clear()
        return sum(isinstance(result, Posting) and result.created for result in results)

    for member_id, due in points_expiry_due(as_of=due_at).iterator(chunk_size=5000):
        batch.append(PostingRequest(
            member_id=member_id, amount=-due, kind=PointsEntry.Kind.EXPIRY,
            idempotency_key=f"expiry:{member_id}:{day}", reference=f"expiry:{day}",
            allow_debt=True, posted_at=as_of,
        ))
        if len(batch) >= 1000:
            posted += flush()
    return posted + flush()


__all__ = [
    "PointsRefused", "Posting", "PurchaseCreation", "PurchaseLineData",
    "member_save", "member_status_change", "points_adjust", "points_adjustment_approve",
    "points_adjustment_reject", "points_post", "points_post_batch", "points_reverse",
    "members_last_purchase_advance", "members_lock",
    "PostingRequest", "purchase_create", "points_expire_due", "purchase_refund",
]
