"""Writes of the campaigns app: messages, segments, campaigns and their life cycle.

A campaign goes draft -> waiting for approval -> scheduled -> running -> finished (or
cancelled at any point before it finishes). Its audience is fixed in one set-based
statement at launch (:func:`campaign_audience_assign`): one ``CampaignRecipient`` row per
member, each deterministically in a variant or the control group. The sending task works
through the pending rows (:func:`campaign_send_batch`); every benefit and message carries
an idempotency key built from the campaign, the occasion and the member, so a batch run
twice, or a worker killed in the middle, gives no one anything twice and skips no one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.template import Context, Engine, TemplateSyntaxError
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy

from campaigns.messaging import member_unsubscribe, message_send
from campaigns.models import (
    Campaign,
    CampaignRecipient,
    CampaignResultSnapshot,
    CampaignVariant,
    ContestDraw,
    MessageDelivery,
    Segment,
    SegmentMember,
)
from campaigns.rfm import rfm_compute
from campaigns.selectors import (
    campaign_results_rows,
    campaign_settings_get,
    member_template_contexts,
    offer_favourite_text,
    segment_criteria_queryset,
    segment_members,
)
from members.models import Member, PointsEntry
from members.selectors import points_expiry_due
from members.services import PointsRefused, points_post

# ------------------------------------------------------------------ error messages

NOT_EDITABLE = _("Only a draft campaign can be changed.")
WRONG_STATUS = _lazy("A campaign that is %(status)s cannot be %(action)s.")
SELF_APPROVAL = _("You created this campaign: another person must approve it.")
NO_APPROVE_PERMISSION = _("You may not approve or launch campaigns.")
NO_VARIANT = _("Add at least one variant with a subject and a text in English or Russian.")
NO_TARGET = _("Choose a segment for this kind of campaign.")
NO_BONUS = _("A bonus points campaign needs a number of points above zero.")
NO_END = _("A multiplier campaign needs an end date.")
BAD_TEMPLATE = _("The text of variant %(code)s has an error: %(error)s")

# Member ids are hashed with the campaign id into 10,000 buckets: the Knuth multiplicative
# hash, in integer arithmetic that PostgreSQL and SQLite compute alike (no overflow below
# 3.4 billion members).
_HASH_MULTIPLIER = 2654435761
_HASH_CAMPAIGN = 40503
_HASH_MODULUS = 4294967296
BUCKETS = 10000

_template_engine = Engine(autoescape=False)


def assignment_bucket(*, member_id: int, campaign_id: int) -> int:
    """Return the member's bucket (0-9999) in a campaign; the SQL computes the same."""
    mixed = (member_id * _HASH_MULTIPLIER + campaign_id * _HASH_CAMPAIGN) % _HASH_MODULUS
    return mixed * BUCKETS // _HASH_MODULUS


def _bucket_sql(column: str, campaign_id: int) -> str:
    return (
        f"((({column} * {_HASH_MULTIPLIER} + {int(campaign_id) * _HASH_CAMPAIGN}) "
        f"%% {_HASH_MODULUS}) * {BUCKETS} / {_HASH_MODULUS})"
    )


@dataclass(frozen=True)
class VariantRange:
    """The buckets ``[low, high)`` that a variant (None: the control group) gets."""

    variant_id: int | None
    low: int
    high: int


def variant_ranges(*, campaign: Campaign, variants: list[CampaignVariant]) -> list[VariantRange]:
    """Return the bucket ranges: control first (``control_percent``), then each variant by
    its share of the rest."""
    control_high = campaign.control_percent * BUCKETS // 100
    ranges = [VariantRange(None, 0, control_high)]
    total_weight = sum(variant.weight for variant in variants) or 1
    low = control_high
    running = 0
    for variant in variants:
        running += variant.weight
        high = control_high + (BUCKETS - control_high) * running // total_weight
        ranges.append(VariantRange(variant.id, low, high))
        low = high
    return ranges


def assignment_for(*, member_id: int, campaign: Campaign,
                   variants: list[CampaignVariant]) -> int | None:
    """Return the variant id the member gets (None: control), as the SQL assigns it."""
    bucket = assignment_bucket(member_id=member_id, campaign_id=campaign.id)
    for item in variant_ranges(campaign=campaign, variants=variants):
        if item.low <= bucket < item.high:
            return item.variant_id
    return variants[-1].id if variants else None


# ------------------------------------------------------------------ segments


def segment_save(*, segment: Segment, actor) -> Segment:
    """Save a segment and refresh its member count (one query)."""
    with transaction.atomic():
        if segment._state.adding and actor is not None:
            segment.created_by = actor
        segment.full_clean()
        segment.save()
        segment_count_refresh(segment=segment)
    return segment


def segment_count_refresh(*, segment: Segment) -> int:
    """Count the segment's members now and store the count."""
    count = segment_members(segment).count()
    Segment.objects.filter(id=segment.id).update(
        last_count=count, last_counted_at=timezone.now()
    )
    segment.last_count = count
    return count


@dataclass(frozen=True)
class CardListProblem:
    """One bad row of an uploaded card list."""

    row: int
    value: str
    message: str


class CardListRejected(ValidationError):
    """The uploaded list has bad rows; nothing was saved."""

    def __init__(self, problems: list[CardListProblem]):
        self.problems = problems
        super().__init__(
            [f"{_('Row')} {p.row}: {p.message} ({p.value!r})" for p in problems[:50]]
        )


def card_list_parse(*, content: bytes) -> list[int]:
    """Return the member ids of a CSV or text file of card numbers (first column).

    A header row whose first cell is not a number is skipped. Raise
    :class:`CardListRejected` listing every unknown, blank or repeated card number.
    """
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CardListRejected(
            [CardListProblem(0, "", _("The file is not UTF-8 text."))]
        ) from error
    rows = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        value = (row[0] if row else "").strip()
        if number == 1 and value and not any(ch.isdigit() for ch in value):
            continue  # a header such as "card_number"
        rows.append((number, value))
    problems: list[CardListProblem] = []
    seen: dict[str, int] = {}
    for number, value in rows:
        if not value:
            problems.append(CardListProblem(number, value, _("empty card number")))
        elif value in seen:
            problems.append(CardListProblem(
                number, value, _("repeats row %(row)s") % {"row": seen[value]}
            ))
        else:
            seen[value] = number
    found: dict[str, int] = {}
    cards = list(seen)
    for start in range(0, len(cards), 5000):
        found.update(
            Member.objects.filter(card_number__in=cards[start:start + 5000])
            .values_list("card_number", "id")
        )
    for card, number in seen.items():
        if card not in found:
            problems.append(CardListProblem(number, card, _("no member has this card number")))
    if not rows:
        problems.append(CardListProblem(0, "", _("The file has no card numbers.")))
    if problems:
        raise CardListRejected(sorted(problems, key=lambda p: p.row))
    return list(found.values())


def segment_static_members_set(*, segment: Segment, member_ids: list[int]) -> int:
    """Replace a static segment's members with ``member_ids``; return how many."""
    with transaction.atomic():
        SegmentMember.objects.filter(segment_id=segment.id).delete()
        SegmentMember.objects.bulk_create(
            [SegmentMember(segment_id=segment.id, member_id=mid) for mid in member_ids],
            batch_size=5000,
        )
        segment_count_refresh(segment=segment)
    return len(member_ids)


# ------------------------------------------------------------------ life cycle


def _locked(campaign_id: int) -> Campaign:
    return Campaign.objects.select_for_update().get(id=campaign_id)


def _refuse_status(campaign: Campaign, action: str) -> None:
    raise ValidationError(
        WRONG_STATUS % {"status": campaign.get_status_display().lower(), "action": action}
    )


def campaign_check(*, campaign: Campaign) -> None:
    """Raise ValidationError when the campaign is not ready for approval."""
    errors = []
    variants = list(campaign.variants.all())
    if campaign.channel != Campaign.Channel.NONE:
        if not any((v.subject_en or v.subject_ru or campaign.channel == "sms")
                   and (v.body_en or v.body_ru) for v in variants):
            errors.append(NO_VARIANT)
        for variant in variants:
            for body in (variant.subject_en, variant.body_en, variant.subject_ru, variant.body_ru):
                try:
                    _template_engine.from_string(body)
                except TemplateSyntaxError as error:
                    errors.append(BAD_TEMPLATE % {"code": variant.code, "error": error})
    if campaign.kind in (Campaign.Kind.BONUS_POINTS, Campaign.Kind.MULTIPLIER,
                         Campaign.Kind.OFFER, Campaign.Kind.NEWSLETTER,
                         Campaign.Kind.CONTEST) and campaign.segment_id is None:
        errors.append(NO_TARGET)
    if campaign.kind == Campaign.Kind.BONUS_POINTS and not campaign.bonus_points:
        errors.append(NO_BONUS)
    if campaign.kind == Campaign.Kind.MULTIPLIER and campaign.ends_at is None:
        errors.append(NO_END)
    if errors:
        raise ValidationError(errors)


def campaign_submit(*, campaign_id: int, actor) -> Campaign:
    """Send a draft for approval once it is complete."""
    with transaction.atomic():
        campaign = _locked(campaign_id)
        if campaign.status != Campaign.Status.DRAFT:
            _refuse_status(campaign, _("submitted"))
        campaign_check(campaign=campaign)
        campaign.status = Campaign.Status.PENDING_APPROVAL
        campaign.save(update_fields=["status"])
    return campaign


def campaign_approve(*, campaign_id: int, actor) -> Campaign:
    """Approve a campaign waiting for approval; it is then scheduled.

    The approver needs ``campaigns.approve_campaign`` and must not be its creator.
    """
    if not actor.has_perm("campaigns.approve_campaign"):
        raise PermissionDenied(NO_APPROVE_PERMISSION)
    with transaction.atomic():
        campaign = _locked(campaign_id)
        if campaign.status != Campaign.Status.PENDING_APPROVAL:
            _refuse_status(campaign, _("approved"))
        if campaign.created_by_id == actor.id:
            raise ValidationError(SELF_APPROVAL)
        campaign_check(campaign=campaign)
        campaign.status = Campaign.Status.SCHEDULED
        campaign.approved_by = actor
        campaign.approved_at = timezone.now()
        campaign.save(update_fields=["status", "approved_by", "approved_at"])
    return campaign


def campaign_reject(*, campaign_id: int, actor) -> Campaign:
    """Send a campaign waiting for approval (or scheduled) back to draft."""
    with transaction.atomic():
        campaign = _locked(campaign_id)
        if campaign.status not in (Campaign.Status.PENDING_APPROVAL, Campaign.Status.SCHEDULED):
            _refuse_status(campaign, _("sent back to draft"))
        campaign.status = Campaign.Status.DRAFT
        campaign.approved_by = None
        campaign.approved_at = None
        campaign.save(update_fields=["status", "approved_by", "approved_at"])
    return campaign


def campaign_launch(*, campaign_id: int, actor, now: datetime | None = None) -> Campaign:
    """Start an approved campaign now: fix its audience and queue the sending.

    Triggered kinds only start running; the daily task finds their members.
    """
    from campaigns.tasks import campaign_send

    if actor is not None and not actor.has_perm("campaigns.approve_campaign"):
        raise PermissionDenied(NO_APPROVE_PERMISSION)
    now = now or timezone.now()
    with transaction.atomic():
        campaign = _locked(campaign_id)
        if campaign.status != Campaign.Status.SCHEDULED:
            _refuse_status(campaign, _("launched"))
        campaign.status = Campaign.Status.RUNNING
        campaign.launched_by = actor if actor is not None else campaign.approved_by
        campaign.launched_at = now
        if campaign.starts_at > now:
            campaign.starts_at = now
        campaign.save(update_fields=["status", "launched_by", "launched_at", "starts_at"])
        if not campaign.is_triggered:
            campaign_audience_assign(campaign=campaign, now=now)
            if campaign.kind == Campaign.Kind.CONTEST:
                contest_draw(campaign_id=campaign.id, actor=actor)
        transaction.on_commit(lambda: campaign_send.delay(campaign.id))
    return campaign


def campaign_cancel(*, campaign_id: int, actor) -> Campaign:
    """Cancel a campaign that has not finished; sending stops at the next batch."""
    with transaction.atomic():
        campaign = _locked(campaign_id)
        if campaign.status in (Campaign.Status.FINISHED, Campaign.Status.CANCELLED):
            _refuse_status(campaign, _("cancelled"))
        campaign.status = Campaign.Status.CANCELLED
        campaign.cancelled_by = actor
        campaign.finished_at = timezone.now()
        campaign.save(update_fields=["status", "cancelled_by", "finished_at"])
    return campaign


def campaign_finish(*, campaign_id: int, reason: str = "") -> Campaign:
    """Mark a running campaign finished (its end date passed, or its budget is used up)."""
    with transaction.atomic():
        campaign = _locked(campaign_id)
        if campaign.status != Campaign.Status.RUNNING:
            return campaign
        campaign.status = Campaign.Status.FINISHED
        campaign.finished_at = timezone.now()
        campaign.stop_reason = reason[:200]
        campaign.save(update_fields=["status", "finished_at", "stop_reason"])
    return campaign


# ------------------------------------------------------------------ audience


def _recipients_insert(*, campaign: Campaign, members: QuerySet[Member], occasion: str,
                       now: datetime) -> int:
    """Insert one recipient row per member of ``members`` in ONE statement; return how many.

    Variant or control comes from the member's bucket (see :func:`assignment_bucket`).
    """
    variants = list(campaign.variants.order_by("code"))
    bucket = _bucket_sql("m.id", campaign.id)
    cases = " ".join(
        f"WHEN {bucket} < {item.high} THEN {item.variant_id if item.variant_id else 'NULL'}"
        for item in variant_ranges(campaign=campaign, variants=variants)
        if item.high > item.low
    )
    variant_sql = f"CAST(CASE {cases} ELSE NULL END AS BIGINT)" if cases else \
        "CAST(NULL AS BIGINT)"
    control_high = campaign.control_percent * BUCKETS // 100
    members_sql, members_params = members.order_by().values("id").query.sql_with_params()
    table = CampaignRecipient._meta.db_table
    ops = connection.ops
    ends = now + timedelta(days=campaign.attribution_days)
    sql = (
        f"INSERT INTO {table} (campaign_id, member_id, variant_id, is_control, status, "  # noqa: S608
        f"occasion, reference_at, window_ends_at) "
        f"SELECT %s, m.id, {variant_sql}, "
        f"CASE WHEN {bucket} < {control_high} THEN %s ELSE %s END, "
        f"CASE WHEN {bucket} < {control_high} THEN %s ELSE %s END, %s, %s, %s "
        f"FROM ({members_sql}) m"
    )
    params = [
        campaign.id, True, False,
        CampaignRecipient.Status.CONTROL, CampaignRecipient.Status.PENDING,
        occasion, ops.adapt_datetimefield_value(now), ops.adapt_datetimefield_value(ends),
        *members_params,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return max(cursor.rowcount, 0)


def campaign_audience_assign(*, campaign: Campaign, now: datetime | None = None) -> int:
    """Fix a one-off campaign's audience: every member of its segment, once.

    Safe to call twice: a campaign whose audience is fixed is left as it is.
    """
    now = now or timezone.now()
    with transaction.atomic():
        campaign = _locked(campaign.id)
        if campaign.assigned_at is not None:
            return campaign.recipients_total
        members = segment_members(campaign.segment, now=now) if campaign.segment_id else \
            Member.objects.filter(status=Member.Status.ACTIVE)
        count = _recipients_insert(campaign=campaign, members=members, occasion="", now=now)
        Campaign.objects.filter(id=campaign.id).update(recipients_total=count, assigned_at=now)
        campaign.recipients_total = count
        campaign.assigned_at = now
    return count


def _trigger_members(campaign: Campaign, now: datetime) -> tuple[QuerySet[Member], str]:
    """Return the members a triggered campaign reaches today and the occasion key."""
    today = timezone.localdate(now)
    base = segment_members(campaign.segment, now=now) if campaign.segment_id else \
        Member.objects.filter(status=Member.Status.ACTIVE)
    mine = CampaignRecipient.objects.filter(campaign_id=campaign.id)
    if campaign.kind == Campaign.Kind.WELCOME:
        # Everyone who joined since the campaign started (a week at most), once.
        since = max(campaign.starts_at, now - timedelta(days=7))
        members = base.filter(enrolled_at__gte=since, enrolled_at__lte=now)
        return members.exclude(id__in=mine.values("member_id")), ""
    if campaign.kind == Campaign.Kind.BIRTHDAY:
        days = [(today.month, today.day)]
        if (today.month, today.day) == (2, 28):
            days.append((2, 29))  # born on 29 February: greeted on the 28th in common years
        condition = Q()
        for month, day in days:
            condition |= Q(birth_date__month=month, birth_date__day=day)
        occasion = str(today.year)
        members = base.filter(condition)
        return members.exclude(
            id__in=mine.filter(occasion=occasion).values("member_id")
        ), occasion
    if campaign.kind == Campaign.Kind.REACTIVATION:
        # Lapsed N days ago (a week of catching up if the job missed a day), reminded once
        # per lapse: not again until they buy and lapse again.
        lapsed = now - timedelta(days=campaign.inactive_days)
        members = base.filter(
            last_purchase_at__lte=lapsed, last_purchase_at__gt=lapsed - timedelta(days=7)
        ).exclude(
            id__in=mine.filter(reference_at__gte=F("member__last_purchase_at"))
            .values("member_id")
        )
        return members, today.isoformat()
    if campaign.kind == Campaign.Kind.EXPIRING:
        within = campaign.expiring_within_days
        due = points_expiry_due(as_of=now + timedelta(days=within)).filter(due__gt=0)
        members = base.filter(id__in=due.values("member_id")).exclude(
            id__in=mine.filter(reference_at__gte=now - timedelta(days=within))
            .values("member_id")
        )
        return members, today.isoformat()
    return base.none(), ""


def campaign_trigger(*, campaign_id: int, now: datetime | None = None) -> int:
    """Add today's members of a running triggered campaign; return how many were added."""
    now = now or timezone.now()
    with transaction.atomic():
        campaign = _locked(campaign_id)
        if campaign.status != Campaign.Status.RUNNING or not campaign.is_triggered:
            return 0
        members, occasion = _trigger_members(campaign, now)
        added = _recipients_insert(campaign=campaign, members=members, occasion=occasion,
                                   now=now)
        Campaign.objects.filter(id=campaign.id).update(
            recipients_total=F("recipients_total") + added
        )
    return added


# ------------------------------------------------------------------ sending


def campaign_voucher_issue(*, campaign: Campaign, member_id: int, key: str):
    """Issue the campaign's catalogue voucher to a member once per ``key``."""
    from rewards.models import Voucher
    from rewards.services import voucher_code_generate

    now = timezone.now()
    voucher, created = Voucher.objects.get_or_create(
        idempotency_key=key,
        defaults={
            "code": voucher_code_generate(),
            "reward": campaign.reward,
            "member_id": member_id,
            "source": Voucher.Source.CAMPAIGN,
            "issued_at": now,
            "expires_at": now + timedelta(days=campaign.reward.voucher_valid_days),
        },
    )
    return voucher, created


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str


def message_render(*, variant: CampaignVariant | None, language: str,
                   context: dict) -> RenderedMessage:
    """Return a variant's subject and text in ``language`` (falling back to the other one)
    with the member's ``context`` filled in."""
    if variant is None:
        return RenderedMessage("", "")
    fields = ("ru", "en") if language == "ru" else ("en", "ru")
    subject = body = ""
    for code in fields:
        body = getattr(variant, f"body_{code}")
        if body:
            subject = getattr(variant, f"subject_{code}") or variant.subject_en or \
                variant.subject_ru
            break
    with translation.override(language):
        render = Context(context, autoescape=False)
        return RenderedMessage(
            _template_engine.from_string(subject).render(render).strip(),
            _template_engine.from_string(body).render(render).strip(),
        )


def _recipient_process(*, campaign: Campaign, recipient: CampaignRecipient,
                       context: dict, connection=None) -> CampaignRecipient:
    """Give one recipient the campaign's benefit and message, each once (idempotent)."""
    key = f"campaign:{campaign.id}:{recipient.occasion}:{recipient.member_id}"
    status = CampaignRecipient.Status.DONE
    if campaign.kind == Campaign.Kind.BONUS_POINTS and campaign.bonus_points:
        if campaign.budget_points is not None and \
                campaign.points_given + campaign.bonus_points > campaign.budget_points:
            return _recipient_over_budget(campaign, recipient)
        try:
            posting = points_post(
                member_id=recipient.member_id, amount=campaign.bonus_points,
                kind=PointsEntry.Kind.CAMPAIGN, idempotency_key=f"{key}:points",
                reference=f"campaign:{campaign.id}", reason=campaign.name[:500],
            )
        except PointsRefused:
            status = CampaignRecipient.Status.SKIPPED
        else:
            recipient.points_entry_id = posting.entry.id
            if posting.created:
                Campaign.objects.filter(id=campaign.id).update(
                    points_given=F("points_given") + campaign.bonus_points
                )
                campaign.points_given += campaign.bonus_points
            context["bonus_points"] = campaign.bonus_points
    if campaign.kind == Campaign.Kind.OFFER and campaign.reward_id:
        if campaign.budget_vouchers is not None and \
                campaign.vouchers_issued >= campaign.budget_vouchers:
            return _recipient_over_budget(campaign, recipient)
        voucher, created = campaign_voucher_issue(
            campaign=campaign, member_id=recipient.member_id, key=f"{key}:voucher"
        )
        recipient.voucher_id = voucher.id
        if created:
            Campaign.objects.filter(id=campaign.id).update(
                vouchers_issued=F("vouchers_issued") + 1
            )
            campaign.vouchers_issued += 1
        context["voucher_code"] = voucher.code
        context["offer"] = campaign.reward.name
    if campaign.channel != Campaign.Channel.NONE and status == CampaignRecipient.Status.DONE:
        rendered = message_render(
            variant=recipient.variant, language=context.get("language") or "en",
            context=context,
        )
        delivery = message_send(
            member_id=recipient.member_id, channel=campaign.channel,
            subject=rendered.subject, text=rendered.text, purpose="campaign",
            idempotency_key=f"{key}:message", campaign_id=campaign.id,
            connection=connection,
        )
        recipient.delivery = delivery
        if delivery.status == MessageDelivery.Status.SKIPPED:
            status = CampaignRecipient.Status.SKIPPED
    recipient.status = status
    recipient.processed_at = timezone.now()
    recipient.save(update_fields=["status", "processed_at", "delivery", "points_entry_id",
                                  "voucher_id"])
    return recipient


def _recipient_over_budget(campaign: Campaign, recipient: CampaignRecipient):
    recipient.status = CampaignRecipient.Status.OVER_BUDGET
    recipient.processed_at = timezone.now()
    recipient.save(update_fields=["status", "processed_at"])
    return recipient


@dataclass(frozen=True)
class BatchResult:
    processed: int
    remaining: bool


def campaign_send_batch(*, campaign_id: int, batch_size: int = 200,
                        throttle: bool = True) -> BatchResult:
    """Process the next ``batch_size`` pending recipients of a running campaign.

    Fixed queries per batch for the member data; one delivery (and at most one benefit)
    per recipient, keyed, so a rerun after a crash repeats nothing. Throttled to the
    settings' messages per second. Stops when the campaign is no longer running and
    finishes it when its budget is used up.
    """
    from django.core.mail import get_connection

    campaign = Campaign.objects.select_related("reward").get(id=campaign_id)
    if campaign.status != Campaign.Status.RUNNING:
        return BatchResult(0, False)
    pending = list(
        CampaignRecipient.objects.filter(
            campaign_id=campaign_id, status=CampaignRecipient.Status.PENDING
        ).select_related("variant").order_by("id")[:batch_size]
    )
    if not pending:
        return BatchResult(0, False)
    texts = " ".join(
        f"{v.subject_en} {v.body_en} {v.subject_ru} {v.body_ru}"
        for v in {r.variant_id: r.variant for r in pending if r.variant}.values()
    )
    contexts = member_template_contexts(
        member_ids=[r.member_id for r in pending],
        expiring_within_days=campaign.expiring_within_days,
        with_expiring=campaign.kind == Campaign.Kind.EXPIRING or "expiring" in texts,
    )
    rate = campaign_settings_get().send_rate_per_second
    started = time.monotonic()
    mail = get_connection() if campaign.channel == Campaign.Channel.EMAIL else None
    over_budget = False
    try:
        if mail is not None:
            mail.open()
        for index, recipient in enumerate(pending):
            if throttle and rate:
                ahead = index / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            context = dict(contexts.get(recipient.member_id, {}))
            if campaign.kind == Campaign.Kind.OFFER and not campaign.reward_id:
                context["offer"] = offer_favourite_text(
                    percent=campaign.offer_discount_percent,
                    category=context.get("favourite_category") or "",
                )
            done = _recipient_process(
                campaign=campaign, recipient=recipient, context=context, connection=mail
            )
            if done.status == CampaignRecipient.Status.OVER_BUDGET:
                over_budget = True
                break
    finally:
        if mail is not None:
            mail.close()
    if over_budget:
        CampaignRecipient.objects.filter(
            campaign_id=campaign_id, status=CampaignRecipient.Status.PENDING
        ).update(status=CampaignRecipient.Status.OVER_BUDGET, processed_at=timezone.now())
        campaign_finish(campaign_id=campaign_id, reason=_("Budget used up"))
        return BatchResult(len(pending), False)
    remaining = CampaignRecipient.objects.filter(
        campaign_id=campaign_id, status=CampaignRecipient.Status.PENDING
    ).exists()
    if not remaining and not campaign.is_triggered and campaign.kind not in (
        Campaign.Kind.MULTIPLIER,
    ) and campaign.ends_at is None:
        campaign_finish(campaign_id=campaign_id, reason=_("Everyone was reached"))
    return BatchResult(len(pending), remaining)


def campaign_test_send(*, campaign_id: int, variant_id: int, member_id: int, actor,
                       email: str) -> MessageDelivery | None:
    """Send a variant, filled in for ``member_id``, to ``email`` (the user's own address).

    Nothing is recorded against the member, no benefit is given and no cap is counted.
    """
    from django.conf import settings
    from django.core.mail import EmailMessage

    campaign = Campaign.objects.get(id=campaign_id)
    variant = CampaignVariant.objects.get(id=variant_id, campaign_id=campaign_id)
    context = member_template_contexts(
        member_ids=[member_id], expiring_within_days=campaign.expiring_within_days
    ).get(member_id, {})
    rendered = message_render(variant=variant, language=context.get("language", "en"),
                              context=context)
    EmailMessage(
        subject=f"[TEST] {rendered.subject}", body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL, to=[email],
    ).send(fail_silently=False)
    return None


# ------------------------------------------------------------------ contests


def contest_draw(*, campaign_id: int, actor, seed: str | None = None) -> ContestDraw:
    """Draw a contest's winners among its non-control recipients, reproducibly, once.

    The eligible member ids are sorted, the seed recorded with their SHA-256, and
    ``random.Random(seed).sample`` picks the winners: anyone can repeat the draw from the
    record. A second call returns the first draw.
    """
    with transaction.atomic():
        campaign = _locked(campaign_id)
        existing = ContestDraw.objects.filter(campaign_id=campaign_id).first()
        if existing is not None:
            return existing
        eligible = sorted(
            CampaignRecipient.objects.filter(campaign_id=campaign_id, is_control=False)
            .values_list("member_id", flat=True)
        )
        seed = seed or secrets.token_hex(16)
        winners = random.Random(seed).sample(eligible, min(campaign.winners, len(eligible)))
        return ContestDraw.objects.create(
            campaign=campaign, seed=seed, eligible_count=len(eligible),
            eligible_sha256=hashlib.sha256(",".join(map(str, eligible)).encode()).hexdigest(),
            winner_ids=winners, drawn_by=actor,
        )


# ------------------------------------------------------------------ periodic


def campaigns_tick(*, now: datetime | None = None) -> dict:
    """Launch scheduled campaigns whose start has come, finish those past their end, and
    add today's members of running triggered campaigns. Return what it did."""
    now = now or timezone.now()
    launched = finished = triggered = 0
    for campaign_id in Campaign.objects.filter(
        status=Campaign.Status.SCHEDULED, starts_at__lte=now
    ).values_list("id", flat=True):
        campaign_launch(campaign_id=campaign_id, actor=None, now=now)
        launched += 1
    for campaign_id in Campaign.objects.filter(
        status=Campaign.Status.RUNNING, ends_at__lte=now
    ).values_list("id", flat=True):
        campaign_finish(campaign_id=campaign_id, reason=_("End date reached"))
        finished += 1
    from campaigns.tasks import campaign_send

    for campaign_id in Campaign.objects.filter(
        status=Campaign.Status.RUNNING, kind__in=Campaign.TRIGGERED_KINDS
    ).values_list("id", flat=True):
        added = campaign_trigger(campaign_id=campaign_id, now=now)
        triggered += added
        if added:
            transaction.on_commit(lambda cid=campaign_id: campaign_send.delay(cid))
    return {"launched": launched, "finished": finished, "triggered": triggered}


# ------------------------------------------------------------------ stored results


def campaign_results_store(*, campaign_id: int) -> CampaignResultSnapshot:
    """Compute a campaign's figures against its control now and keep them, replacing the
    figures kept before (what the dashboards show)."""
    campaign = Campaign.objects.get(id=campaign_id)
    rows = [
        [variant_id, bool(is_control), int(total), int(reached or 0), int(converted or 0),
         int(orders or 0), str(revenue or 0), int(spent or 0)]
        for variant_id, is_control, total, reached, converted, orders, revenue, spent
        in campaign_results_rows(campaign=campaign)
    ]
    snapshot, _created = CampaignResultSnapshot.objects.update_or_create(
        campaign=campaign, defaults={"computed_at": timezone.now(), "rows": rows},
    )
    return snapshot


def campaign_results_refresh() -> int:
    """Keep the figures of every campaign whose results can still change; return how many
    were computed.

    Running campaigns, and finished ones until a day after their last attribution window
    closed (purchases up to then still count); a campaign with nothing kept yet too.
    """
    now = timezone.now()
    refreshed = 0
    for campaign in Campaign.objects.filter(
        status__in=(Campaign.Status.RUNNING, Campaign.Status.FINISHED)
    ).select_related("result_snapshot").order_by("id"):
        try:
            computed_at = campaign.result_snapshot.computed_at
        except CampaignResultSnapshot.DoesNotExist:
            computed_at = None
        settled = (campaign.finished_at or now) + timedelta(days=campaign.attribution_days + 1)
        if campaign.status == Campaign.Status.RUNNING or computed_at is None \
                or computed_at < settled:
            campaign_results_store(campaign_id=campaign.id)
            refreshed += 1
    return refreshed


__all__ = [
    "assignment_bucket",
    "campaign_results_refresh",
    "campaign_results_store",
    "campaign_approve",
    "campaign_audience_assign",
    "campaign_cancel",
    "campaign_finish",
    "campaign_launch",
    "campaign_reject",
    "campaign_send_batch",
    "campaign_submit",
    "campaign_test_send",
    "campaign_trigger",
    "campaigns_tick",
    "card_list_parse",
    "contest_draw",
    "member_unsubscribe",
    "message_send",
    "rfm_compute",
    "segment_criteria_queryset",
    "segment_save",
    "segment_static_members_set",
]
