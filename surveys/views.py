"""Public survey pages: a member answers through their invitation link, no login.

Every page is in the member's language (the invitation's; ``?lang=en|ru`` switches),
on a small standalone layout made for phones. A forged, expired, answered or closed
link gets its own page and stores nothing; an out-of-range score re-shows the form.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone, translation
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from surveys.models import Question, Survey
from surveys.public_texts import SCORE_ERRORS, TEXTS
from surveys.services import (
    AnswerInput,
    SurveyLinkError,
    invitation_by_token,
    invitation_usable,
    response_submit,
)

_STATUS = {"forged": 404, "expired": 410, "closed": 410, "answered": 409}


def _language(request: HttpRequest, invitation=None) -> str:
    chosen = request.GET.get("lang")
    if chosen in TEXTS:
        return chosen
    if invitation is not None and invitation.language in TEXTS:
        return invitation.language
    # No invitation (a forged link): the browser's language.
    return getattr(request, "LANGUAGE_CODE", "ru") if getattr(
        request, "LANGUAGE_CODE", "") in TEXTS else "ru"


def _render(request, template, language, context, status=200) -> HttpResponse:
    with translation.override(language):
        response = TemplateResponse(request, template, {
            "t": TEXTS[language], "language": language,
            "other_language": "en" if language == "ru" else "ru", **context,
        }, status=status)
        response.render()
    response["Content-Language"] = language
    # A link is personal: never sent as a referrer to another site. Not "no-referrer":
    # browsers then send "Origin: null" with the form, which CSRF protection refuses.
    response["Referrer-Policy"] = "same-origin"
    return response


def _link_problem(request, error: SurveyLinkError, language: str) -> HttpResponse:
    until = ""
    if error.invitation is not None:
        until = timezone.localtime(error.invitation.expires_at).strftime("%d.%m.%Y %H:%M")
    texts = TEXTS[language]
    return _render(request, "surveys/problem.html", language, {
        "code": error.code, "heading": texts[f"{error.code}_title"],
        "message": texts[error.code] % {"until": until} if error.code == "expired"
        else texts[error.code],
    }, status=_STATUS[error.code])


def _questions(survey: Survey, language: str, submitted: dict, problems: dict) -> list[dict]:
    items = []
    for question in survey.questions.all():
        items.append({
            "question": question, "text": question.text(language),
            "name": f"q_{question.code}",
            "value": submitted.get(question.code, ""),
            "range": list(range(question.scale_min, question.scale_max + 1))
            if question.kind == Question.Kind.SCALE else [],
            "choices": list(enumerate(question.choices(language))),
            "error": _problem_text(problems.get(question.code), language),
        })
    return items


def _problem_text(problem, language: str) -> str:
    if not problem:
        return ""
    code, params = problem
    text = SCORE_ERRORS[language][code]
    return text % params if params else text


@never_cache
@require_http_methods(["GET", "POST"])
def answer(request: HttpRequest, token: str) -> HttpResponse:
    """Show the survey of an invitation link, or store the answer and thank."""
    try:
        invitation = invitation_by_token(token)
    except SurveyLinkError as error:
        return _link_problem(request, error, _language(request))
    language = _language(request, invitation)
    try:
        invitation_usable(invitation)
    except SurveyLinkError as error:
        return _link_problem(request, error, language)
    survey = invitation.survey
    submitted: dict = {}
    problems: dict = {}
    score = comment = ""
    status = 200
    if request.method == "POST":
        score = request.POST.get("score", "")
        comment = request.POST.get("comment", "")
        submitted = {q.code: request.POST.get(f"q_{q.code}", "") for q in survey.questions.all()}
        language = request.POST.get("lang") if request.POST.get("lang") in TEXTS else language
        try:
            response_submit(token=token, data=AnswerInput(
                score=score, comment=comment, answers=submitted))
        except SurveyLinkError as error:
            return _link_problem(request, error, language)
        except ValidationError as error:
            problems = getattr(error, "problems", {})
            status = 400
        else:
            url = f"{request.path}thanks/"
            return redirect(f"{url}?lang={language}")
    low, high = survey.score_min, survey.score_max
    return _render(request, "surveys/answer.html", language, {
        "survey": survey,
        "question": survey.question(language),
        "intro": survey.intro(language),
        "is_multi": survey.kind == Survey.Kind.MULTI,
        "scores": list(range(low, high + 1)),
        "low_label": TEXTS[language]["not_likely" if survey.kind == Survey.Kind.NPS
                                     else "not_satisfied"],
        "high_label": TEXTS[language]["very_likely" if survey.kind == Survey.Kind.NPS
                                      else "very_satisfied"],
        "score": score, "comment": comment,
        "score_error": _problem_text(problems.get("score"), language),
        "comment_error": _problem_text(problems.get("comment"), language),
        "questions": _questions(survey, language, submitted, problems),
        "has_errors": bool(problems),
    }, status=status)


@never_cache
def thanks(request: HttpRequest, token: str) -> HttpResponse:
    """Thank the member; a forged link gets the forged-link page."""
    try:
        invitation = invitation_by_token(token)
    except SurveyLinkError as error:
        return _link_problem(request, error, _language(request))
    language = _language(request, invitation)
    if invitation.answered_at is None:
        return redirect("surveys:answer", token=token)
    return _render(request, "surveys/thanks.html", language, {"survey": invitation.survey})
