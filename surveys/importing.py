"""Survey answers from an external survey tool's file, as an import kind.

Registered with :mod:`members.importing.registry` (module listed in
``LOYALTY_IMPORT_KINDS``; :class:`surveys.apps.SurveysConfig` also registers it).
A row is one answer: survey code, member card number or e-mail, score, comment, date.
The same row in a second file (same survey, member and moment) is stored once.
"""

from __future__ import annotations

from datetime import UTC, timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.importing.files import datetime_parser, integer_parser, text_parser
from members.importing.kinds import CARD_NUMBER_ALIASES
from members.importing.registry import (
    NEW,
    UNCHANGED,
    Column,
    ImportKind,
    Record,
    kind_register,
)
from members.models import Member, Store
from surveys.models import Response, Survey
from surveys.services import SCORE_OUT_OF_RANGE, response_import

SURVEY_UNKNOWN = _("There is no survey with the code “%(code)s”.")
SURVEY_MULTI = _("“%(code)s” has several questions; only NPS and CSAT answers are imported.")
MEMBER_MISSING = _("Give the member's card number or e-mail.")
MEMBER_UNKNOWN_CARD = _("There is no member with the card number “%(card)s”.")
MEMBER_UNKNOWN_EMAIL = _("There is no member with the e-mail “%(email)s”.")
MEMBER_EMAIL_AMBIGUOUS = _(
    "%(count)s members have the e-mail “%(email)s”; give the card number instead."
)
STORE_UNKNOWN = _("There is no store with the code “%(code)s”.")


def import_key(survey_id: int, member_id: int, answered_at) -> str:
    """Return an imported answer's identity: survey, member and moment (UTC)."""
    moment = answered_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    return f"import:{survey_id}:{member_id}:{moment}"


@kind_register
class SurveyAnswersKind(ImportKind):
    """NPS or CSAT answers collected by another tool."""

    key = "survey_answers"
    label = _("Survey answers")
    description = _(
        "Answers from an external survey tool, one per row: the survey's code, the "
        "member's card number or e-mail, the score, a comment and the date. Follow-ups "
        "open for unhappy answers as for answers given on the survey page; a row "
        "imported before is left as it is."
    )
    record_name = _("answer")
    permissions = ("surveys.add_response",)
    columns = (
        Column("survey", _("survey"), text_parser(max_length=50), required=True,
               aliases=("survey", "survey code", "опрос", "код опроса"),
               help_text=_("The survey's code, e.g. nps-after-purchase.")),
        Column("card_number", _("card number"), text_parser(max_length=32, compact=True),
               aliases=CARD_NUMBER_ALIASES,
               help_text=_("The card number, or leave it empty and give the e-mail.")),
        Column("email", _("e-mail"), text_parser(max_length=254),
               aliases=("email", "e-mail", "mail", "эл почта", "электронная почта", "почта")),
        Column("score", _("score"), integer_parser(), required=True,
               aliases=("score", "rating", "nps", "csat", "оценка", "балл оценки")),
        Column("comment", _("comment"), text_parser(max_length=4000),
               aliases=("comment", "feedback", "text", "комментарий", "отзыв")),
        Column("answered_at", _("date"), datetime_parser(future=False), required=True,
               aliases=("date", "answered at", "submitted", "submitted at", "дата",
                        "дата ответа")),
        Column("store", _("store"), text_parser(max_length=32),
               aliases=("store", "store code", "магазин", "код магазина"),
               help_text=_("Optional: the store's code, for the breakdown by store.")),
    )

    def start(self, job) -> None:
        self.surveys = {survey.code.lower(): survey for survey in Survey.objects.all()}
        self.stores = {code.upper(): pk for code, pk in Store.objects.values_list("code", "id")}

    def row_key(self, record: Record) -> str:
        values = record.values
        who = values.get("card_number") or (values.get("email") or "").lower()
        if not values.get("survey") or not who or values.get("answered_at") is None:
            return ""
        return f"{values['survey'].lower()}|{who}|{values['answered_at'].isoformat()}"

    def check(self, records: list[Record], job) -> None:
        cards = {r.values["card_number"] for r in records if r.values.get("card_number")}
        emails = {r.values["email"].lower() for r in records
                  if r.values.get("email") and not r.values.get("card_number")}
        by_card = dict(Member.objects.filter(card_number__in=cards)
                       .values_list("card_number", "id")) if cards else {}
        by_email: dict[str, list[int]] = {}
        if emails:
            for pk, email in Member.objects.filter(email__in=emails).values_list("id", "email"):
                by_email.setdefault(email.lower(), []).append(pk)
        planned = []
        for record in records:
            values = record.values
            survey = None
            if values.get("survey"):
                survey = self.surveys.get(values["survey"].lower())
                if survey is None:
                    record.error("survey", SURVEY_UNKNOWN, code=values["survey"])
                elif survey.kind == Survey.Kind.MULTI:
                    record.error("survey", SURVEY_MULTI, code=values["survey"])
                    survey = None
            member_id = None
            if values.get("card_number"):
                member_id = by_card.get(values["card_number"])
                if member_id is None:
                    record.error("card_number", MEMBER_UNKNOWN_CARD, card=values["card_number"])
            elif values.get("email"):
                found = by_email.get(values["email"].lower(), [])
                if not found:
                    record.error("email", MEMBER_UNKNOWN_EMAIL, email=values["email"])
                elif len(found) > 1:
                    record.error("email", MEMBER_EMAIL_AMBIGUOUS, email=values["email"],
                                 count=len(found))
                else:
                    member_id = found[0]
            else:
                record.error("card_number", MEMBER_MISSING)
            score = values.get("score")
            if survey is not None and score is not None and not (
                survey.score_min <= score <= survey.score_max
            ):
                record.error("score", SCORE_OUT_OF_RANGE, low=survey.score_min,
                             high=survey.score_max)
            store_id = None
            if values.get("store"):
                store_id = self.stores.get(values["store"].upper())
                if store_id is None:
                    record.error("store", STORE_UNKNOWN, code=values["store"])
            if record.errors or survey is None or member_id is None or score is None:
                continue
            key = import_key(survey.pk, member_id, values["answered_at"])
            record.plan = {
                "survey": survey, "member_id": member_id, "score": score,
                "comment": values.get("comment") or "", "answered_at": values["answered_at"],
                "import_key": key, "store_id": store_id,
            }
            planned.append(record)
        known = set(Response.objects.filter(
            import_key__in=[r.plan["import_key"] for r in planned]
        ).values_list("import_key", flat=True))
        for record in planned:
            record.outcome = UNCHANGED if record.plan["import_key"] in known else NEW

    def apply(self, records: list[Record], job) -> None:
        days = []
        for record in records:
            _response, created = response_import(**record.plan)
            if not created:
                record.outcome = UNCHANGED
                continue
            days.append(timezone.localdate(record.plan["answered_at"]))
        if days:
            # Days the roll-up already holds are rebuilt; today is read live anyway.
            start, end = min(days), min(max(days), timezone.localdate() - timedelta(days=1))
            if start <= end:
                from surveys.tasks import responses_rollup_refresh

                transaction.on_commit(lambda: responses_rollup_refresh.delay(
                    start.isoformat(), end.isoformat()))
