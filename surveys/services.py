"""Writes of the surveys app: invitations, answers, follow-ups and the daily roll-up."""

from __future__ import annotations

import ast
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.models import Member, PointsEntry, Purchase
from members.services import PointsRefused, points_post
from surveys import sentiment
from surveys.models import (
    Answer,
    FollowUp,
    Invitation,
    Question,
    Response,
    ResponseDaily,
    ResponseTheme,
    RollupState,
    Survey,
)

# Error messages (constants the tests assert).
SCORE_REQUIRED = _("Choose a score.")
SCORE_OUT_OF_RANGE = _("The score must be a whole number from %(low)s to %(high)s.")
ANSWER_REQUIRED = _("Answer this question.")
CHOICE_UNKNOWN = _("Choose one of the options.")
COMMENT_TOO_LONG = _("Keep the comment under %(limit)s characters.")
FOLLOW_UP_RESOLVED = _("This follow-up was already resolved.")
OUTCOME_REQUIRED = _("Choose the outcome.")
GOODWILL_NEGATIVE = _("Goodwill points cannot be negative.")
FORMULA_INVALID = _(
    "The formula may use numbers, + − × / and brackets, and the codes of this survey's "
    "scale questions; “%(part)s” is not allowed."
)
FORMULA_UNKNOWN_NAME = _("“%(name)s” is not the code of a scale question of this survey.")

COMMENT_MAX = 4000
FOLLOW_UP_DUE_DAYS = 3
_LINK_SALT = b"surveys.invitation-link"


class SurveyLinkError(Exception):
    """A link that cannot be answered: ``code`` is forged, expired, answered or closed."""

    def __init__(self, code: str, invitation: Invitation | None = None):
        self.code = code
        self.invitation = invitation
        super().__init__(code)


# ------------------------------------------------------------------ links


def _signature(link_key: str) -> str:
    key = hashlib.sha256(_LINK_SALT + settings.SECRET_KEY.encode()).digest()
    return hmac.new(key, link_key.encode(), hashlib.sha256).hexdigest()[:32]


def invitation_token(invitation: Invitation) -> str:
    """Return the token of the invitation's link: its key and the key's signature."""
    return f"{invitation.link_key}.{_signature(invitation.link_key)}"


def invitation_url(invitation: Invitation) -> str:
    """Return the absolute URL of the invitation's answer page."""
    base = getattr(settings, "PUBLIC_BASE_URL", "http://localhost:8000").rstrip("/")
    return base + reverse("surveys:answer", args=[invitation_token(invitation)])


def invitation_by_token(token: str, *, for_update: bool = False) -> Invitation:
    """Return the invitation of a link token; raise SurveyLinkError("forged") when the
    token is malformed, its signature wrong or its key unknown."""
    link_key, _dot, signature = (token or "").partition(".")
    if not link_key or len(link_key) > 32 or not hmac.compare_digest(
        signature.encode(), _signature(link_key).encode()
    ):
        raise SurveyLinkError("forged")
    queryset = Invitation.objects.select_related("survey", "member")
    if for_update:
        queryset = queryset.select_for_update(of=("self",))
    invitation = queryset.filter(link_key=link_key).first()
    if invitation is None:
        raise SurveyLinkError("forged")
    return invitation


def invitation_usable(invitation: Invitation, *, now: datetime | None = None) -> None:
    """Raise SurveyLinkError when the invitation can no longer be answered."""
    now = now or timezone.now()
    if invitation.answered_at is not None:
        raise SurveyLinkError("answered", invitation)
    if invitation.expires_at <= now:
        raise SurveyLinkError("expired", invitation)
    if not invitation.survey.is_open(now):
        raise SurveyLinkError("closed", invitation)


# ------------------------------------------------------------------ invitations


@dataclass
class InvitationBatch:
    """What :func:`invitations_create` did: the new invitations' ids and how many members
    were already invited to the survey (skipped)."""

    created_ids: list[int] = field(default_factory=list)
    skipped: int = 0


def invitations_create(
    *,
    survey_id: int,
    member_ids,
    actor=None,
    channel: str = Invitation.Channel.EMAIL,
    purchase_id: int | None = None,
    now: datetime | None = None,
    send: bool = True,
) -> InvitationBatch:
    """Invite members to a survey, once each; send the links after commit.

    ``member_ids`` may be a list or a queryset of ids (a segment's members). A member
    already invited to this survey is skipped, so inviting a segment twice invites
    each member once. Each invitation gets a random link key; the language is the
    member's own. With ``send`` the messages go out through
    :func:`surveys.tasks.invitations_send` after commit.
    """
    now = now or timezone.now()
    survey = Survey.objects.get(pk=survey_id)
    store_id = None
    if purchase_id is not None:
        store_id = Purchase.objects.values_list("store_id", flat=True).get(pk=purchase_id)
    batch = InvitationBatch()
    ids = list(member_ids.values_list("id", flat=True) if hasattr(member_ids, "values_list")
               else member_ids)
    chunk = 2000
    with transaction.atomic():
        for start in range(0, len(ids), chunk):
            part = ids[start:start + chunk]
            already = set(
                Invitation.objects.filter(survey_id=survey_id, member_id__in=part)
                .values_list("member_id", flat=True)
            )
            languages = _member_languages(part)
            rows = [
                Invitation(
                    survey_id=survey_id, member_id=member_id,
                    link_key=secrets.token_urlsafe(24)[:32],
                    language=languages.get(member_id) or survey.default_language,
                    channel=channel, purchase_id=purchase_id, store_id=store_id,
                    created_at=now, expires_at=now + timedelta(days=survey.link_valid_days),
                    created_by=actor,
                )
                for member_id in dict.fromkeys(part) if member_id not in already
            ]
            batch.skipped += len(part) - len(rows)
            Invitation.objects.bulk_create(rows, batch_size=1000)
            keys = [row.link_key for row in rows]
            batch.created_ids += list(
                Invitation.objects.filter(link_key__in=keys).values_list("id", flat=True)
            )
        if send and batch.created_ids:
            from surveys.tasks import invitations_send

            created = list(batch.created_ids)
            transaction.on_commit(lambda: invitations_send.delay(created))
    return batch


def _member_languages(member_ids: list[int]) -> dict[int, str]:
    """Return each member's language where members have one (else an empty dict)."""
    if not any(f.name == "language" for f in Member._meta.fields):
        return {}
    languages = {code for code, _name in settings.LANGUAGES}
    return {
        pk: language
        for pk, language in Member.objects.filter(pk__in=member_ids).values_list("id", "language")
        if language in languages
    }


INVITATION_SUBJECT = {"en": "A quick question from us", "ru": "Короткий вопрос от нас"}
INVITATION_TEXT = {
    "en": "{question}\nAnswer in one tap: {url}\nThe link works until {until}.",
    "ru": "{question}\nОтветьте одним касанием: {url}\nСсылка действует до {until}.",
}


def invitation_send(*, invitation_id: int) -> int | None:
    """Send one invitation's link through the campaigns' message service.

    The idempotency key is ``survey-invitation:<id>``: sending twice sends once. Return
    the message delivery's id (None when the invitation is already answered).
    """
    invitation = Invitation.objects.select_related("survey").get(pk=invitation_id)
    if invitation.answered_at is not None:
        return invitation.delivery_id
    language = invitation.language
    text = INVITATION_TEXT[language].format(
        question=invitation.survey.question(language), url=invitation_url(invitation),
        until=timezone.localtime(invitation.expires_at).strftime("%d.%m.%Y"),
    )
    message_send = _message_sender()
    if message_send is None:  # campaigns' sending not there: e-mail the link ourselves
        return _invitation_mail(invitation, INVITATION_SUBJECT[language], text)
    delivery = message_send(
        member_id=invitation.member_id, channel=invitation.channel,
        subject=INVITATION_SUBJECT[language], text=text, purpose="survey",
        idempotency_key=f"survey-invitation:{invitation.pk}",
        actor=invitation.created_by,
    )
    if invitation.delivery_id != delivery.pk:
        Invitation.objects.filter(pk=invitation.pk).update(delivery_id=delivery.pk)
    return delivery.pk


def _message_sender():
    """Return campaigns' ``message_send`` (the one message log and consent check)."""
    try:
        from campaigns.services import message_send
    except ImportError:
        try:
            from campaigns.messaging import message_send
        except ImportError:
            return None
    return message_send


def _invitation_mail(invitation: Invitation, subject: str, text: str) -> None:
    """Send the link by e-mail without the campaigns' message log (its fallback)."""
    from django.core.mail import send_mail

    member = Member.objects.get(pk=invitation.member_id)
    if invitation.channel == Invitation.Channel.EMAIL and member.email and \
            member.email_consent and member.status == Member.Status.ACTIVE:
        send_mail(subject, text, None, [member.email])
    return None


# ------------------------------------------------------------------ answers


@dataclass
class AnswerInput:
    """What a member submitted: the score, the comment and, for multi-question
    surveys, the raw value of each question by code."""

    score: str | int | None = None
    comment: str = ""
    answers: dict[str, str] = field(default_factory=dict)


_ERROR_MESSAGES = {"required": SCORE_REQUIRED, "range": SCORE_OUT_OF_RANGE,
                   "choice": CHOICE_UNKNOWN, "long": COMMENT_TOO_LONG}


def answer_validate(*, survey: Survey, data: AnswerInput) -> tuple[int | None, dict, dict]:
    """Return (score, {question: (number, text)}, problems by field) for submitted data.

    A problem is (code, params) with code ``required``, ``range``, ``choice`` or
    ``long``, so the public page can say it in the member's language; fields are
    "score", "comment" or a question's code. Nothing is written.
    """
    problems: dict[str, tuple[str, dict]] = {}
    score = None
    parsed: dict[Question, tuple[int | None, str]] = {}
    if len(data.comment or "") > COMMENT_MAX:
        problems["comment"] = ("long", {"limit": COMMENT_MAX})
    if survey.kind == Survey.Kind.MULTI:
        for question in survey.questions.all():
            raw = str(data.answers.get(question.code) or "").strip()
            if not raw:
                if question.required:
                    problems[question.code] = ("required", {})
                continue
            if question.kind == Question.Kind.SCALE:
                number = _int_or_none(raw)
                if number is None or not question.scale_min <= number <= question.scale_max:
                    problems[question.code] = (
                        "range", {"low": question.scale_min, "high": question.scale_max})
                    continue
                parsed[question] = (number, "")
            elif question.kind == Question.Kind.CHOICE:
                number = _int_or_none(raw)
                options = question.choices("en")
                if number is None or not 0 <= number < len(options):
                    problems[question.code] = ("choice", {})
                    continue
                parsed[question] = (number, options[number])
            elif len(raw) > COMMENT_MAX:
                problems[question.code] = ("long", {"limit": COMMENT_MAX})
            else:
                parsed[question] = (None, raw)
        return None, parsed, problems
    raw = "" if data.score is None else str(data.score).strip()
    if not raw:
        problems["score"] = ("required", {})
    else:
        score = _int_or_none(raw)
        if score is None or not survey.score_min <= score <= survey.score_max:
            problems["score"] = ("range", {"low": survey.score_min, "high": survey.score_max})
            score = None
    return score, parsed, problems


def problems_error(problems: dict) -> ValidationError:
    """Return the problems of :func:`answer_validate` as a ValidationError by field."""
    return ValidationError({
        name: str(_ERROR_MESSAGES[code]) % params if params else str(_ERROR_MESSAGES[code])
        for name, (code, params) in problems.items()
    })


def _int_or_none(raw) -> int | None:
    try:
        text = str(raw).strip()
        if not text.lstrip("-").isdigit():
            return None
        return int(text)
    except (TypeError, ValueError):
        return None


def response_submit(*, token: str, data: AnswerInput, now: datetime | None = None) -> Response:
    """Store a member's answer given through their invitation link, once.

    Raise SurveyLinkError for a forged, expired, answered or closed link and
    ValidationError (by field) for a missing or out-of-range answer; either way
    nothing is written. The invitation row is locked, so two submissions at the same
    moment store one answer.
    """
    now = now or timezone.now()
    with transaction.atomic():
        invitation = invitation_by_token(token, for_update=True)
        invitation_usable(invitation, now=now)
        survey = invitation.survey
        score, parsed, problems = answer_validate(survey=survey, data=data)
        if problems:
            error = problems_error(problems)
            error.problems = problems
            raise error
        try:
            with transaction.atomic():
                response = _response_create(
                    survey=survey, member_id=invitation.member_id, score=score,
                    comment=data.comment or "", answered_at=now,
                    source=Response.Source.LINK, invitation=invitation,
                    store_id=invitation.store_id, language=invitation.language, parsed=parsed,
                )
        except IntegrityError as error:  # answered meanwhile through another connection
            raise SurveyLinkError("answered", invitation) from error
        Invitation.objects.filter(pk=invitation.pk).update(answered_at=now)
    return response


def response_import(
    *, survey: Survey, member_id: int, score: int, comment: str, answered_at: datetime,
    import_key: str, store_id: int | None = None,
) -> tuple[Response, bool]:
    """Store an answer from an external tool's file; return (answer, created).

    ``import_key`` identifies the row across files: the same row twice is stored once.
    The caller has checked the score's range.
    """
    existing = Response.objects.filter(import_key=import_key).first()
    if existing is not None:
        return existing, False
    with transaction.atomic():
        response = _response_create(
            survey=survey, member_id=member_id, score=score, comment=comment,
            answered_at=answered_at, source=Response.Source.IMPORT, store_id=store_id,
            language=survey.default_language, import_key=import_key, parsed={},
        )
    return response, True


def _snapshot(member_id: int) -> tuple[int | None, str]:
    """Return the member's current tier id and RFM segment (None / "" when none)."""
    from rewards.models import MemberTier

    tier_id = MemberTier.objects.filter(member_id=member_id).values_list(
        "tier_id", flat=True).first()
    segment = ""
    try:
        from campaigns.models import MemberRfm
    except ImportError:  # campaigns not installed: no RFM breakdown
        MemberRfm = None
    if MemberRfm is not None:
        segment = MemberRfm.objects.filter(member_id=member_id).values_list(
            "segment", flat=True).first() or ""
    return tier_id, segment


def is_unhappy(survey: Survey, score: int | None) -> bool:
    """Return whether an answer opens a follow-up: NPS 0-6, CSAT in the bottom two boxes."""
    if score is None:
        return False
    if survey.kind == Survey.Kind.NPS:
        return score <= 6
    if survey.kind == Survey.Kind.CSAT:
        return score <= 2
    return False


def _response_create(
    *, survey: Survey, member_id: int, score: int | None, comment: str,
    answered_at: datetime, source: str, language: str, parsed: dict,
    invitation: Invitation | None = None, store_id: int | None = None,
    import_key: str | None = None,
) -> Response:
    tier_id, segment = _snapshot(member_id)
    text_for_analysis = " ".join([comment] + [text for number, text in parsed.values()
                                              if number is None and text])
    themes = sentiment.themes_find(text_for_analysis)
    response = Response.objects.create(
        survey=survey, member_id=member_id, invitation=invitation, source=source,
        score=score, comment=comment, answered_at=answered_at, language=language,
        touchpoint=survey.touchpoint, store_id=store_id, tier_id=tier_id,
        rfm_segment=segment, sentiment_auto=sentiment.sentiment_label(text_for_analysis),
        themes=",".join(themes), import_key=import_key,
    )
    if parsed:
        Answer.objects.bulk_create([
            Answer(response=response, question=question, number=number, text=text)
            for question, (number, text) in parsed.items()
        ])
        index = loyalty_index_compute(
            survey.loyalty_formula,
            {question.code: number for question, (number, _t) in parsed.items()
             if number is not None and question.kind == Question.Kind.SCALE},
        )
        if index is not None:
            response.loyalty_index = index
            response.save(update_fields=["loyalty_index"])
    _themes_store(response, themes)
    if is_unhappy(survey, score):
        FollowUp.objects.create(
            response=response, member_id=member_id, created_at=answered_at,
            due_date=timezone.localdate(answered_at) + timedelta(days=FOLLOW_UP_DUE_DAYS),
        )
    return response


def _themes_store(response: Response, themes: list[str]) -> None:
    ResponseTheme.objects.filter(response=response).delete()
    ResponseTheme.objects.bulk_create([
        ResponseTheme(response=response, theme=theme, answered_at=response.answered_at,
                      survey_id_copy=response.survey_id)
        for theme in themes
    ])


def response_classify(*, response_id: int, sentiment_override: str, themes: list[str],
                      actor=None) -> Response:
    """Correct a comment's sentiment (empty: back to the computed one) and themes."""
    unknown = [theme for theme in themes if theme not in sentiment.THEMES]
    if unknown:
        raise ValidationError({"themes": _("Unknown theme: %(theme)s.") % {
            "theme": ", ".join(unknown)}})
    with transaction.atomic():
        response = Response.objects.select_for_update().get(pk=response_id)
        response.sentiment_override = sentiment_override
        response.themes = ",".join(themes)
        response.save(update_fields=["sentiment_override", "themes"])
        _themes_store(response, themes)
    return response


# ------------------------------------------------------------------ loyalty index

_ALLOWED_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Add, ast.Sub, ast.Mult,
                  ast.Div, ast.USub, ast.UAdd, ast.Constant, ast.Name, ast.Load)


def loyalty_formula_check(formula: str, codes: set[str]) -> list[str]:
    """Return the formula's problems ([] when it is usable with these question codes)."""
    if not formula.strip():
        return []
    try:
        tree = ast.parse(formula, mode="eval")
    except SyntaxError:
        return [str(FORMULA_INVALID) % {"part": formula}]
    problems = []
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES) or (
            isinstance(node, ast.Constant) and not isinstance(node.value, int | float)
        ):
            problems.append(str(FORMULA_INVALID) % {"part": ast.unparse(node)
                                                   if hasattr(node, "lineno") else "?"})
        elif isinstance(node, ast.Name) and node.id not in codes:
            problems.append(str(FORMULA_UNKNOWN_NAME) % {"name": node.id})
    return problems


def loyalty_index_compute(formula: str, values: dict[str, int]) -> Decimal | None:
    """Return the formula evaluated on the answers (Decimal, 4 places), or None when the
    formula is empty, an answer it needs is missing, or it divides by zero."""
    if not formula.strip():
        return None
    try:
        tree = ast.parse(formula, mode="eval")
    except SyntaxError:
        return None

    def value(node) -> Decimal:
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return Decimal(str(node.value))
        if isinstance(node, ast.Name):
            return Decimal(values[node.id])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            inner = value(node.operand)
            return -inner if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.BinOp):
            left, right = value(node.left), value(node.right)
            operations = {ast.Add: left.__add__, ast.Sub: left.__sub__,
                          ast.Mult: left.__mul__, ast.Div: left.__truediv__}
            for kind, operation in operations.items():
                if isinstance(node.op, kind):
                    return operation(right)
        raise ValueError(formula)

    try:
        return value(tree).quantize(Decimal("0.0001"))
    except (KeyError, ValueError, ZeroDivisionError, InvalidOperation, ArithmeticError):
        return None


# ------------------------------------------------------------------ follow-ups


def follow_up_resolve(
    *, follow_up_id: int, outcome: str, note: str = "", goodwill_points: int = 0, actor=None,
    now: datetime | None = None,
) -> FollowUp:
    """Close a follow-up with its outcome; optionally give goodwill points once.

    The points go through the ledger service with the key ``survey-follow-up:<id>``
    and the kind *goodwill*, so resolving twice (or a double click) posts once; a
    second resolve is refused with FOLLOW_UP_RESOLVED. A refusal of the ledger
    (e.g. a blocked member) refuses the whole resolve: nothing is written.
    """
    now = now or timezone.now()
    if outcome not in FollowUp.Outcome.values:
        raise ValidationError({"outcome": OUTCOME_REQUIRED})
    if goodwill_points < 0:
        raise ValidationError({"goodwill_points": GOODWILL_NEGATIVE})
    with transaction.atomic():
        follow_up = FollowUp.objects.select_for_update().get(pk=follow_up_id)
        if follow_up.status == FollowUp.Status.RESOLVED:
            raise ValidationError(FOLLOW_UP_RESOLVED)
        entry = None
        if goodwill_points:
            try:
                posting = points_post(
                    member_id=follow_up.member_id, amount=goodwill_points,
                    kind=PointsEntry.Kind.GOODWILL,
                    idempotency_key=f"survey-follow-up:{follow_up.pk}",
                    reason=(f"Survey follow-up #{follow_up.pk}: {note}".strip(": ")[:500]),
                    actor=actor, reference=f"survey-follow-up:{follow_up.pk}",
                )
            except PointsRefused as refusal:
                raise ValidationError({"goodwill_points": str(refusal)}) from refusal
            entry = posting.entry
        follow_up.status = FollowUp.Status.RESOLVED
        follow_up.outcome = outcome
        follow_up.outcome_note = note[:500]
        follow_up.goodwill_points = goodwill_points
        follow_up.goodwill_entry = entry
        follow_up.resolved_at = now
        follow_up.resolved_by = actor
        if follow_up.owner_id is None and actor is not None:
            follow_up.owner = actor
        follow_up.save(update_fields=[
            "status", "outcome", "outcome_note", "goodwill_points", "goodwill_entry",
            "resolved_at", "resolved_by", "owner",
        ])
    return follow_up


# ------------------------------------------------------------------ roll-up

DIMENSIONS = {"all": None, "tier": "tier_id", "rfm": "rfm_segment", "store": "store_id"}


def response_counts(queryset, group: list[str]):
    """Return ``queryset`` (answers) grouped by ``group`` with the roll-up's counters.

    The one definition of promoters, detractors and boxes, shared by the roll-up
    refresh and the live reading of days the roll-up does not hold yet.
    """
    nps = Q(survey__kind=Survey.Kind.NPS)
    csat = Q(survey__kind=Survey.Kind.CSAT)
    return queryset.filter(score__isnull=False).values(*group).annotate(
        responses=Count("id"),
        promoters=Count("id", filter=nps & Q(score__gte=9)),
        passives=Count("id", filter=nps & Q(score__gte=7, score__lte=8)),
        detractors=Count("id", filter=nps & Q(score__lte=6)),
        score_sum=Sum("score"),
        top_two=Count("id", filter=csat & Q(score__gte=F("survey__csat_scale") - 1)),
        bottom_two=Count("id", filter=csat & Q(score__lte=2)),
        via_link=Count("id", filter=Q(source=Response.Source.LINK)),
    ).order_by()


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """Return the aware datetimes from the start of ``start`` to the end of ``end``."""
    zone = timezone.get_current_timezone()
    return (datetime.combine(start, time.min, tzinfo=zone),
            datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone))


def responses_rollup_refresh(*, start: date, end: date, complete: bool = False) -> int:
    """Rebuild the daily roll-up for the days ``start``..``end``; return rows written.

    Set-based: one GROUP BY per breakdown over the days' answers and one over their
    invitations, then a bulk insert. The roll-up state row is locked first, so two
    refreshes never interleave their delete and insert. ``complete`` says every day up
    to ``end`` is now in the roll-up (the nightly job), so readers stop reading those
    days live; ``end`` is never later than yesterday then.
    """
    low, high = day_bounds(start, end)
    with transaction.atomic():
        RollupState.objects.get_or_create(pk=1)
        RollupState.objects.select_for_update().get(pk=1)
        ResponseDaily.objects.filter(day__gte=start, day__lte=end).delete()
        answers = Response.objects.filter(answered_at__gte=low, answered_at__lt=high).annotate(
            day=TruncDate("answered_at"))
        rows: dict[tuple, ResponseDaily] = {}
        base = ["day", "survey_id", "survey__kind", "touchpoint"]
        for dimension, column in DIMENSIONS.items():
            group = base + ([column] if column else [])
            for counts in response_counts(answers, group):
                value = "" if column is None or counts[column] is None else str(counts[column])
                key = (counts["day"], counts["survey_id"], dimension, value)
                rows[key] = ResponseDaily(
                    day=counts["day"], survey_id=counts["survey_id"],
                    kind=counts["survey__kind"], touchpoint=counts["touchpoint"],
                    dimension=dimension, value=value,
                    **{name: counts[name] or 0 for name in COUNTERS if name != "invited"},
                )
        invited = Invitation.objects.filter(created_at__gte=low, created_at__lt=high).annotate(
            day=TruncDate("created_at")).values(
            "day", "survey_id", "survey__kind", "survey__touchpoint").annotate(
            invited=Count("id")).order_by()
        for counts in invited:
            key = (counts["day"], counts["survey_id"], "all", "")
            row = rows.get(key)
            if row is None:
                row = rows[key] = ResponseDaily(
                    day=counts["day"], survey_id=counts["survey_id"],
                    kind=counts["survey__kind"], touchpoint=counts["survey__touchpoint"],
                    dimension="all", value="",
                )
            row.invited = counts["invited"]
        ResponseDaily.objects.bulk_create(rows.values(), batch_size=2000)
        state = RollupState.objects.get(pk=1)
        if complete:
            state.complete_through = min(end, timezone.localdate() - timedelta(days=1))
        state.refreshed_at = timezone.now()
        state.save(update_fields=["complete_through", "refreshed_at"])
    return len(rows)


COUNTERS = ("responses", "promoters", "passives", "detractors", "score_sum", "top_two",
            "bottom_two", "via_link", "invited")


def responses_rollup_nightly(*, today: date | None = None, days: int = 3) -> int:
    """Rebuild the roll-up for the last ``days`` complete days (late answers and imports
    of recent days), or from the first answer when it was never built."""
    today = today or timezone.localdate()
    end = today - timedelta(days=1)
    state = RollupState.objects.filter(pk=1).first()
    if state is None or state.complete_through is None:
        first = Response.objects.order_by("answered_at").values_list(
            "answered_at", flat=True).first()
        invited = Invitation.objects.order_by("created_at").values_list(
            "created_at", flat=True).first()
        starts = [timezone.localdate(at) for at in (first, invited) if at is not None]
        start = min(starts) if starts else end
    else:
        start = min(state.complete_through + timedelta(days=1), end - timedelta(days=days - 1))
    if start > end:
        return 0
    return responses_rollup_refresh(start=start, end=end, complete=True)
