"""Writes that carry the programme's rules: purchases and their points, tiers, rewards,
vouchers, stamps, referrals and bonuses.

Every function runs in one transaction and moves points only through
:func:`members.services.points_post`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import formats, timezone
from django.utils.translation import gettext_lazy as _

from members.models import Member, PointsEntry, Purchase
from members.selectors import programme_settings_get
from members.services import (
    PointsRefused,
    PurchaseLineData,
    member_save,
    points_post,
    points_reverse,
    purchase_create,
)
from rewards.engine import (
    BasketLine,
    basket_points_explain,
    bonus_multipliers_get,
    earning_rules_load,
)
from rewards.models import MemberTier, Referral, Reward, StampRule, Tier, TierChange, Voucher
from rewards.selectors import (
    category_names_get,
    member_qualifying_value,
    members_with_birthday_window,
    tier_entry_get,
    tier_for_value,
    tiers_ordered,
)

# Messages are constants so that tests and screens agree on them.
REWARD_INACTIVE = _("This reward is not available now.")
REWARD_OUT_OF_STOCK = _("This reward is out of stock.")
REWARD_LIMIT_REACHED = _(
    "The member has already redeemed this reward %(count)s time(s), the limit per member."
)
REWARD_WRONG_TIER = _("This reward is for %(tier)s members and above.")
VOUCHER_NOT_ISSUED = _("Only an issued voucher can be %(action)s; this one is %(status)s.")
FULFILMENT_UNKNOWN = _("Choose a fulfilment status: to ship, shipped or delivered.")
FULFILMENT_NOT_GIFT = _("Only a physical gift is shipped; this voucher is not one.")
VOUCHER_CANCEL_REASON_REQUIRED = _("Give a reason for cancelling the voucher.")
VOUCHER_EXPIRED = _("This voucher expired on %(date)s and can no longer be used.")
REFERRAL_SELF = _("A member cannot refer themselves (same person, phone or e-mail).")
REFERRAL_LIMIT = _("This member has already referred %(limit)s people this month, the limit.")
REFERRAL_EXISTS = _("This member was already referred by someone.")

# Unambiguous letters and digits (no 0/O, 1/I/L) so codes survive being read aloud.
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def voucher_code_generate() -> str:
    """Return a new voucher code such as "K7QM-2XPA-9TRD" (~59 bits of randomness)."""
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


# ------------------------------------------------------------------ purchases


@dataclass(frozen=True)
class PurchaseRecording:
    """The purchase, whether this call created it, its accrual and vouchers it earned."""

    purchase: Purchase
    created: bool
    accrual: PointsEntry | None = None
    vouchers: list[Voucher] = field(default_factory=list)
    tier_change: TierChange | None = None


def purchase_record(
    *,
    store_id: int,
    receipt_number: str,
    total: Decimal,
    purchased_at: datetime | None = None,
    member_id: int | None = None,
    discount: Decimal = Decimal(0),
    channel: str = Purchase.Channel.STORE,
    lines: list[PurchaseLineData] | tuple = (),
    actor: AbstractBaseUser | None = None,
) -> PurchaseRecording:
    """Record a receipt and apply the programme to it, exactly once.

    Points by the earning rules in force (pending for the return window), an immediate
    tier upgrade if the purchase qualifies, stamp vouchers, and the referral bonuses of
    a first qualifying purchase. The same store and receipt again returns the first
    purchase with ``created`` False and changes nothing. A blocked member's purchase is
    recorded without points.
    """
    purchased_at = purchased_at or timezone.now()
    with transaction.atomic():
        creation = purchase_create(
            store_id=store_id,
            receipt_number=receipt_number,
            total=total,
            purchased_at=purchased_at,
            member_id=member_id,
            discount=discount,
            channel=channel,
            lines=lines,
        )
        if not creation.created or member_id is None:
            return PurchaseRecording(purchase=creation.purchase, created=creation.created)
        # One member's purchases apply one after another: stamp counts and tier checks
        # must see each other.
        member = Member.objects.select_for_update().only("id", "status").get(id=member_id)
        if member.status != Member.Status.ACTIVE:
            return PurchaseRecording(purchase=creation.purchase, created=True)
        accrual = _purchase_accrue(purchase=creation.purchase, lines=lines, actor=actor)
        tier_change = tier_upgrade_check(member_id=member_id, at=purchased_at)
        vouchers = _stamps_apply(purchase=creation.purchase)
        _referral_qualify(purchase=creation.purchase)
    return PurchaseRecording(
        purchase=creation.purchase,
        created=True,
        accrual=accrual,
        vouchers=vouchers,
        tier_change=tier_change,
    )


def _purchase_accrue(*, purchase: Purchase, lines, actor) -> PointsEntry | None:
    """Post the purchase's accrual by the earning rules, pending for the return window."""
    names = category_names_get()
    basket = [
        BasketLine(
            amount=line.amount,
            category_id=line.category_id,
            sku=line.sku,
            category_name=names.get(line.category_id, ""),
        )
        for line in lines
    ]
    entry = tier_entry_get(member_id=purchase.member_id)
    multiplier, multiplier_name = bonus_multipliers_get(
        member_ids=[purchase.member_id], at=purchase.purchased_at
    ).get(purchase.member_id, (Decimal(1), ""))
    explanation = basket_points_explain(
        rules=earning_rules_load(on=timezone.localdate(purchase.purchased_at)),
        total=purchase.total,
        lines=basket,
        tier=entry.tier if entry else None,
        extra_multiplier=multiplier,
        extra_multiplier_name=multiplier_name,
    )
    if explanation.points <= 0:
        return None
    window = programme_settings_get().return_window_days
    return points_post(
        member_id=purchase.member_id,
        amount=explanation.points,
        kind=PointsEntry.Kind.ACCRUAL,
        idempotency_key=f"purchase:{purchase.id}",
        actor=actor,
        purchase_id=purchase.id,
        # Earned when bought: tier windows and expiry count from the purchase's time.
        posted_at=purchase.purchased_at,
        reference=f"purchase:{purchase.id}",
        available_at=purchase.purchased_at + timedelta(days=window) if window else None,
        details=explanation.steps,
    ).entry


# ------------------------------------------------------------------ tiers


def tier_upgrade_check(*, member_id: int, at: datetime | None = None) -> TierChange | None:
    """Move a member up at once if their qualifying value reaches a higher tier.

    Downgrades happen only in :func:`rewards.evaluation.tiers_evaluate`. A tier set by
    hand holds until its end date. Return the change made, or None.
    """
    tiers = tiers_ordered()
    if not tiers:
        return None
    at = at or timezone.now()
    value = member_qualifying_value(member_id=member_id, at=at)
    qualified = tier_for_value(value=value, tiers=tiers)
    with transaction.atomic():
        status = MemberTier.objects.select_for_update().filter(member_id=member_id).first()
        if status is None:
            return _tier_assign(
                member_id=member_id,
                tier=qualified,
                reason=TierChange.Reason.QUALIFIED,
                from_tier=None,
            )
        if status.source == MemberTier.Source.MANUAL and (
            status.manual_until is None or status.manual_until >= timezone.localdate(at)
        ):
            return None
        current = next((tier for tier in tiers if tier.id == status.tier_id), None)
        if current is not None and qualified.rank <= current.rank:
            if qualified.rank == current.rank and status.below_since is not None:
                status.below_since = None
                status.save(update_fields=["below_since"])
            return None
        return _tier_assign(
            member_id=member_id,
            tier=qualified,
            reason=TierChange.Reason.QUALIFIED,
            from_tier=current,
            status=status,
        )


def _tier_assign(
    *,
    member_id: int,
    tier: Tier,
    reason: str,
    from_tier: Tier | None,
    status: MemberTier | None = None,
    note: str = "",
    actor=None,
    source: str = MemberTier.Source.QUALIFIED,
    manual_until: date | None = None,
) -> TierChange:
    """Set a member's tier and keep the change in the history (caller holds the lock)."""
    now = timezone.now()
    if status is None:
        MemberTier.objects.update_or_create(
            member_id=member_id,
            defaults={
                "tier": tier,
                "source": source,
                "since": now,
                "manual_until": manual_until,
                "below_since": None,
            },
        )
    else:
        status.tier, status.source, status.since = tier, source, now
        status.manual_until, status.below_since = manual_until, None
        status.save(update_fields=["tier", "source", "since", "manual_until", "below_since"])
    return TierChange.objects.create(
        member_id=member_id,
        from_tier=from_tier,
        to_tier=tier,
        reason=reason,
        note=note,
        actor=actor,
    )


TIER_REASON_REQUIRED = _("Give a reason for setting the tier by hand.")


def tier_set_manual(
    *,
    member_id: int,
    tier_id: int,
    reason: str,
    until: date | None,
    actor: AbstractBaseUser,
) -> TierChange:
    """Set a member's tier by hand (also an invitation-only one) until ``until``.

    Without ``until`` the tier holds until someone changes it. The evaluation leaves the
    member alone until then.
    """
    reason = (reason or "").strip()
    if not reason:
        raise PointsRefused(TIER_REASON_REQUIRED, code="reason_required")
    tier = Tier.objects.get(id=tier_id)
    with transaction.atomic():
        status = MemberTier.objects.select_for_update().filter(member_id=member_id).first()
        return _tier_assign(
            member_id=member_id,
            tier=tier,
            reason=TierChange.Reason.MANUAL,
            from_tier=status.tier if status else None,
            status=status,
            note=reason,
            actor=actor,
            source=MemberTier.Source.MANUAL,
            manual_until=until,
        )


# ------------------------------------------------------------------ enrolment and bonuses


def member_enrol(
    *, member: Member, actor: AbstractBaseUser | None, referrer_id: int | None = None
) -> Member:
    """Enrol a new member: save them, put them in the entry tier, post the welcome bonus,
    and register who referred them.

    A refused referral leaves the enrolment intact: the refusal is returned on the member
    as ``referral_refusal`` (None when there was no referrer or it was accepted).
    """
    with transaction.atomic():
        member_save(member=member, actor=actor)
        tiers = tiers_ordered()
        if tiers:
            _tier_assign(
                member_id=member.pk,
                tier=tiers[0],
                reason=TierChange.Reason.ENROLLED,
                from_tier=None,
            )
        welcome = programme_settings_get().welcome_points
        if welcome:
            points_post(
                member_id=member.pk,
                amount=welcome,
                kind=PointsEntry.Kind.WELCOME,
                idempotency_key=f"welcome:{member.pk}",
                reference=f"welcome:{member.pk}",
            )
    # After the enrolment commits: a refused referral must not undo the enrolment.
    member.referral_refusal = None
    if referrer_id is not None:
        try:
            referral_register(referred_id=member.pk, referrer_id=referrer_id)
        except PointsRefused as refusal:
            member.referral_refusal = refusal
    member.refresh_from_db(fields=["points_balance"])
    return member


def referral_register(*, referred_id: int, referrer_id: int) -> Referral:
    """Record that ``referrer_id`` brought ``referred_id``; bonuses follow the first purchase.

    Refuse self-referral (same member, phone or e-mail), a second referrer, and more
    referrals in a calendar month than the programme allows.
    """
    with transaction.atomic():
        # Lock the referrer so two referrals at once cannot both pass the monthly limit.
        referrer = Member.objects.select_for_update().get(id=referrer_id)
        referred = Member.objects.get(id=referred_id)
        same_contact = (referrer.phone and referrer.phone == referred.phone) or (
            referrer.email and referrer.email == referred.email
        )
        if referrer.pk == referred.pk or same_contact:
            raise PointsRefused(REFERRAL_SELF, code="referral_self")
        if Referral.objects.filter(referred_id=referred.pk).exists():
            raise PointsRefused(REFERRAL_EXISTS, code="referral_exists")
        limit = programme_settings_get().referral_monthly_limit
        month_start = timezone.localtime().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        if Referral.objects.filter(referrer=referrer, created_at__gte=month_start).count() >= limit:
            raise PointsRefused(REFERRAL_LIMIT, code="referral_limit", params={"limit": limit})
        referral = Referral.objects.create(referrer=referrer, referred=referred)
        Member.objects.filter(id=referred.pk).update(referred_by=referrer)
    return referral


def _referral_qualify(*, purchase: Purchase) -> None:
    """Post both referral bonuses when the referred member's first qualifying purchase lands."""
    referral = Referral.objects.filter(
        referred_id=purchase.member_id, status=Referral.Status.PENDING
    ).first()
    settings_row = programme_settings_get()
    if referral is None or purchase.total < settings_row.referral_min_purchase:
        return
    for member_id, points, role in (
        (referral.referrer_id, settings_row.referral_referrer_points, "referrer"),
        (referral.referred_id, settings_row.referral_referred_points, "referred"),
    ):
        if points:
            try:
                points_post(
                    member_id=member_id,
                    amount=points,
                    kind=PointsEntry.Kind.REFERRAL,
                    idempotency_key=f"referral:{referral.id}:{role}",
                    reference=f"referral:{referral.id}",
                )
            except PointsRefused as refusal:
                # A blocked referrer earns nothing; the new member still gets theirs.
                if refusal.code != "member_not_active":
                    raise
    referral.status = Referral.Status.REWARDED
    referral.rewarded_at = timezone.now()
    referral.save(update_fields=["status", "rewarded_at"])


def birthday_bonuses_grant(*, today: date | None = None) -> int:
    """Post this year's birthday bonus to every active member whose birthday window is open.

    The window is the birthday itself, its week (Monday to Sunday) or its month, per the
    programme settings. Safe to run any number of times a day: one bonus per member and
    year. Return how many bonuses were posted now.
    """
    settings_row = programme_settings_get()
    today = today or timezone.localdate()
    if not settings_row.birthday_points:
        return 0
    posted = 0
    timing = settings_row.birthday_timing
    for member_id, year in members_with_birthday_window(today=today, timing=timing):
        try:
            posting = points_post(
                member_id=member_id,
                amount=settings_row.birthday_points,
                kind=PointsEntry.Kind.BIRTHDAY,
                idempotency_key=f"birthday:{member_id}:{year}",
                reference=f"birthday:{year}",
            )
        except PointsRefused:
            continue
        posted += posting.created
    return posted


# ------------------------------------------------------------------ rewards and vouchers


def reward_redeem(
    *, member_id: int, reward_id: int, actor: AbstractBaseUser | None, idempotency_key: str
) -> Voucher:
    """Debit a reward's points and issue its voucher, in one transaction.

    Refuse (and change nothing) when the reward is inactive or out of its window, out of
    stock, over the member's limit, above the member's tier, or when the member is
    blocked or lacks the available points. The same ``idempotency_key`` returns the
    first voucher.
    """
    existing = Voucher.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing
    now = timezone.now()
    today = timezone.localdate(now)
    try:
        with transaction.atomic():
            # Lock order: reward, then member, everywhere. The reward row is locked only
            # when it has stock to count; otherwise redemptions of it run side by side and
            # the member's row (locked first) keeps a per-member limit exact.
            reward = Reward.objects.select_related("min_tier").get(id=reward_id)
            if reward.stock is not None:
                reward = (
                    Reward.objects.select_for_update(of=("self",))
                    .select_related("min_tier")
                    .get(id=reward_id)
                )
            elif reward.per_member_limit is not None:
                Member.objects.select_for_update().filter(id=member_id).values_list(
                    "id", flat=True
                ).first()
            if (
                not reward.is_active
                or (reward.available_from and reward.available_from > today)
                or (reward.available_until and reward.available_until < today)
            ):
                raise PointsRefused(REWARD_INACTIVE, code="reward_inactive")
            if reward.stock is not None and reward.stock <= 0:
                raise PointsRefused(REWARD_OUT_OF_STOCK, code="out_of_stock")
            if reward.min_tier_id is not None:
                entry = tier_entry_get(member_id=member_id)
                if entry is None or entry.tier.rank < reward.min_tier.rank:
                    raise PointsRefused(
                        REWARD_WRONG_TIER, code="wrong_tier", params={"tier": reward.min_tier.name}
                    )
            if reward.per_member_limit is not None:
                count = (
                    Voucher.objects.filter(
                        reward=reward, member_id=member_id, source=Voucher.Source.REDEMPTION
                    )
                    .exclude(status=Voucher.Status.CANCELLED)
                    .count()
                )
                if count >= reward.per_member_limit:
                    raise PointsRefused(
                        REWARD_LIMIT_REACHED, code="limit_reached", params={"count": count}
                    )
            voucher = Voucher.objects.create(
                code=voucher_code_generate(),
                reward=reward,
                member_id=member_id,
                issued_at=now,
                expires_at=now + timedelta(days=reward.voucher_valid_days),
                issued_by=actor,
                idempotency_key=idempotency_key,
                fulfilment=Voucher.Fulfilment.TO_SHIP if reward.kind == Reward.Kind.GIFT else "",
            )
            posting = points_post(
                member_id=member_id,
                amount=-reward.points_cost,
                kind=PointsEntry.Kind.REDEMPTION,
                idempotency_key=f"voucher:{voucher.id}",
                actor=actor,
                reference=f"voucher:{voucher.id}",
                reason=reward.name,
            )
            voucher.redemption_entry = posting.entry
            voucher.save(update_fields=["redemption_entry"])
            if reward.stock is not None:
                Reward.objects.filter(id=reward.id).update(stock=F("stock") - 1)
    except IntegrityError:
        existing = Voucher.objects.filter(idempotency_key=idempotency_key).first()
        if existing is None:
            raise
        return existing
    return voucher


def voucher_use(
    *, voucher_id: int, actor: AbstractBaseUser | None, at: datetime | None = None
) -> Voucher:
    """Mark an issued voucher used (by Support or an import); using it again changes nothing."""
    with transaction.atomic():
        voucher = Voucher.objects.select_for_update().get(id=voucher_id)
        if voucher.status == Voucher.Status.USED:
            return voucher
        at = at or timezone.now()
        if voucher.status == Voucher.Status.ISSUED and at > voucher.expires_at:
            raise PointsRefused(
                VOUCHER_EXPIRED,
                code="voucher_expired",
                params={
                    "date": formats.date_format(
                        timezone.localtime(voucher.expires_at), "SHORT_DATE_FORMAT"
                    )
                },
            )
        if voucher.status != Voucher.Status.ISSUED:
            raise PointsRefused(
                VOUCHER_NOT_ISSUED,
                code="voucher_not_issued",
                params={"action": _("used"), "status": voucher.get_status_display().lower()},
            )
        voucher.status = Voucher.Status.USED
        voucher.used_at = at
        voucher.save(update_fields=["status", "used_at"])
    return voucher


def voucher_cancel(*, voucher_id: int, reason: str, actor: AbstractBaseUser | None) -> Voucher:
    """Cancel an issued voucher: its points return by a reversal and its stock comes back."""
    reason = (reason or "").strip()
    if not reason:
        raise PointsRefused(VOUCHER_CANCEL_REASON_REQUIRED, code="reason_required")
    with transaction.atomic():
        voucher = Voucher.objects.select_for_update().select_related("reward").get(id=voucher_id)
        if voucher.status != Voucher.Status.ISSUED:
            raise PointsRefused(
                VOUCHER_NOT_ISSUED,
                code="voucher_not_issued",
                params={"action": _("cancelled"), "status": voucher.get_status_display().lower()},
            )
        Reward.objects.select_for_update().filter(id=voucher.reward_id).first()
        if voucher.redemption_entry_id is not None:
            points_reverse(entry_id=voucher.redemption_entry_id, reason=reason, actor=actor)
        # Only a redemption took stock; a stamp or campaign voucher gives none back.
        if voucher.reward.stock is not None and voucher.source == Voucher.Source.REDEMPTION:
            Reward.objects.filter(id=voucher.reward_id).update(stock=F("stock") + 1)
        voucher.status = Voucher.Status.CANCELLED
        voucher.cancelled_at = timezone.now()
        voucher.cancel_reason = reason
        voucher.save(update_fields=["status", "cancelled_at", "cancel_reason"])
    return voucher


def voucher_fulfilment_set(
    *, voucher_id: int, fulfilment: str, actor: AbstractBaseUser | None
) -> Voucher:
    """Record where a physical gift is: to ship, shipped, delivered.

    Only a gift's voucher that is issued or used (not cancelled or expired) moves.
    """
    if fulfilment not in Voucher.Fulfilment.values or not fulfilment:
        raise PointsRefused(FULFILMENT_UNKNOWN, code="fulfilment_unknown")
    with transaction.atomic():
        voucher = Voucher.objects.select_for_update().get(id=voucher_id)
        if not voucher.fulfilment:
            raise PointsRefused(FULFILMENT_NOT_GIFT, code="not_a_gift")
        if voucher.status not in (Voucher.Status.ISSUED, Voucher.Status.USED):
            raise PointsRefused(
                VOUCHER_NOT_ISSUED,
                code="voucher_not_issued",
                params={"action": _("shipped"), "status": voucher.get_status_display().lower()},
            )
        voucher.fulfilment = fulfilment
        voucher.save(update_fields=["fulfilment"])
    return voucher


def vouchers_expire(*, now: datetime | None = None) -> int:
    """Mark every issued voucher past its expiry as expired (set-based); return how many."""
    return Voucher.objects.filter(
        status=Voucher.Status.ISSUED, expires_at__lt=now or timezone.now()
    ).update(status=Voucher.Status.EXPIRED)


def _stamps_apply(*, purchase: Purchase) -> list[Voucher]:
    """Issue a stamp voucher when this purchase is the member's Nth qualifying one."""
    issued = []
    for rule in StampRule.objects.filter(is_active=True).select_related("reward"):
        purchases = Purchase.objects.filter(
            member_id=purchase.member_id,
            purchased_at__date__gte=rule.starts_on,
        )
        if rule.category_id is not None:
            if not purchase.lines.filter(category_id=rule.category_id).exists():
                continue
            purchases = purchases.filter(lines__category_id=rule.category_id).distinct()
        count = purchases.count()
        if count == 0 or count % rule.every:
            continue
        now = timezone.now()
        voucher, _created = Voucher.objects.get_or_create(
            idempotency_key=f"stamp:{rule.id}:{purchase.id}",
            defaults={
                "code": voucher_code_generate(),
                "reward": rule.reward,
                "member_id": purchase.member_id,
                "source": Voucher.Source.STAMP,
                "issued_at": now,
                "expires_at": now + timedelta(days=rule.reward.voucher_valid_days),
                "purchase": purchase,
            },
        )
        issued.append(voucher)
    return issued


__all__ = [
    "PurchaseRecording",
    "birthday_bonuses_grant",
    "member_enrol",
    "purchase_record",
    "referral_register",
    "reward_redeem",
    "tier_set_manual",
    "tier_upgrade_check",
    "voucher_cancel",
    "voucher_code_generate",
    "voucher_fulfilment_set",
    "voucher_use",
    "vouchers_expire",
]
