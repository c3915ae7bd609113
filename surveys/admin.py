"""Survey screens: surveys and their results, invitations, answers, the follow-up queue.

Thin: numbers come from :mod:`surveys.selectors`, writes go through
:mod:`surveys.services`; every extra page checks its permission itself.
"""

from __future__ import annotations

import secrets

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from members.admin import ReadOnlyAdmin
from surveys import selectors, services
from surveys.forms import (
    InviteForm,
    PeriodForm,
    QuestionFormSet,
    ResolveForm,
    ResponseClassifyForm,
)
from surveys.models import (
    LOYALTY_PRESET,
    FollowUp,
    Invitation,
    Question,
    Response,
    Sentiment,
    Survey,
)


class PlainTitleMixin:
    """List pages titled with the plural name, not "Select survey to change"."""

    def changelist_view(self, request, extra_context=None):
        title = str(self.opts.verbose_name_plural).capitalize()
        return super().changelist_view(request, {"title": title, **(extra_context or {})})


def _short(text: str, length: int = 80) -> str:
    return Truncator(text).chars(length)


def _score_class(response: Response) -> str:
    if response.score is None:
        return ""
    kind = response.survey.kind
    if kind == Survey.Kind.NPS:
        return "promoter" if response.score >= 9 else "passive" if response.score >= 7 \
            else "detractor"
    if kind == Survey.Kind.CSAT:
        scale = response.survey.csat_scale
        return "promoter" if response.score >= scale - 1 else "detractor" \
            if response.score <= 2 else "passive"
    return ""


# ------------------------------------------------------------------ surveys


class QuestionInline(admin.TabularInline):
    model = Question
    formset = QuestionFormSet
    extra = 0
    fields = ("position", "code", "kind", "text_en", "text_ru", "scale_min", "scale_max",
              "choices_en", "choices_ru", "required")
    verbose_name_plural = _("Questions (multi-question surveys only)")


@admin.register(Survey)
class SurveyAdmin(PlainTitleMixin, admin.ModelAdmin):
    """Marketing managers configure surveys and invite members; everyone reads results."""

    list_display = ("name", "code", "kind_column", "touchpoint", "window_column",
                    "results_column")
    list_filter = ("kind", "touchpoint")
    search_fields = ("name", "code")
    prepopulated_fields = {"code": ("name",)}
    inlines = [QuestionInline]
    fieldsets = (
        (None, {"fields": ("name", "code", "kind", "csat_scale", "touchpoint")}),
        (_("Texts"), {
            "fields": ("default_language", "question_en", "question_ru", "intro_en", "intro_ru"),
            "description": _("Members see the page in their own language. An empty question "
                             "uses the standard one: “How likely are you to recommend us to "
                             "a friend or colleague?” for NPS."),
        }),
        (_("When"), {"fields": ("starts_at", "ends_at", "link_valid_days")}),
        (_("Loyalty index"), {
            "fields": ("loyalty_formula",),
            "description": format_html(
                "{} <code>{}</code>", _("Multi-question surveys. Preset:"), LOYALTY_PRESET),
        }),
    )

    @admin.display(description=_("kind"), ordering="kind")
    def kind_column(self, survey: Survey) -> str:
        if survey.kind == Survey.Kind.CSAT:
            return f"CSAT 1-{survey.csat_scale}"
        return survey.get_kind_display()

    @admin.display(description=_("active"))
    def window_column(self, survey: Survey) -> str:
        start = date_format(timezone.localtime(survey.starts_at), "SHORT_DATE_FORMAT")
        end = date_format(timezone.localtime(survey.ends_at), "SHORT_DATE_FORMAT") \
            if survey.ends_at else "…"
        return f"{start} – {end}"

    @admin.display(description=_("results"))
    def results_column(self, survey: Survey) -> str:
        return format_html('<a href="{}">{}</a>',
                           reverse("admin:surveys_survey_results", args=[survey.pk]),
                           gettext("Results"))

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("loyalty_formula", "")
        return initial

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:survey_id>/results/", wrap(self.results_view),
                 name="surveys_survey_results"),
            path("<int:survey_id>/invite/", wrap(self.invite_view),
                 name="surveys_survey_invite"),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {"can_invite": request.user.has_perm("surveys.add_invitation")}
        return super().change_view(request, object_id, form_url, {**extra,
                                                                   **(extra_context or {})})

    def _context(self, request, survey, title):
        return {**self.admin_site.each_context(request), "opts": self.opts,
                "original": survey, "survey": survey, "title": title}

    def results_view(self, request: HttpRequest, survey_id: int):
        """The survey's numbers: score, trend, breakdowns, before/after, comments."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        survey = get_object_or_404(Survey, pk=survey_id)
        form = PeriodForm(request.GET or None)
        data = form.cleaned_data if form.is_bound and form.is_valid() else _period_default()
        context = self._context(request, survey, gettext("Results: %(name)s") % {
            "name": survey.name})
        context.update(form=form, period=data, **results_context(survey, data))
        return TemplateResponse(request, "admin/surveys/survey/results.html", context)

    def invite_view(self, request: HttpRequest, survey_id: int):
        """Invite members picked by card number, or a segment, to the survey."""
        if not request.user.has_perm("surveys.add_invitation"):
            raise PermissionDenied
        survey = get_object_or_404(Survey, pk=survey_id)
        form = InviteForm(request.POST or None)
        closed = survey.ends_at is not None and survey.ends_at <= timezone.now()
        if request.method == "POST" and not closed and form.is_valid():
            segment = form.cleaned_data.get("segment")
            if segment is not None:
                from campaigns.selectors import segment_members

                member_ids = segment_members(segment).values_list("id", flat=True)
            else:
                member_ids = form.cleaned_data["member_ids"]
            batch = services.invitations_create(
                survey_id=survey.pk, member_ids=member_ids, actor=request.user,
                channel=form.cleaned_data["channel"],
            )
            self.message_user(request, gettext(
                "%(created)s members invited; %(skipped)s had been invited to this survey "
                "before and were skipped.") % {"created": len(batch.created_ids),
                                               "skipped": batch.skipped}, messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:surveys_survey_results",
                                                args=[survey.pk]))
        context = self._context(request, survey, gettext("Invite members: %(name)s") % {
            "name": survey.name})
        context.update(form=form, closed=closed, invited=survey.invitations.count())
        return TemplateResponse(request, "admin/surveys/survey/invite.html", context)


def _period_default() -> dict:
    """Return the default period: the last 90 days by week."""
    form = PeriodForm({})
    form.is_valid()
    return form.cleaned_data


CHART_W, CHART_H, CHART_PAD = 640, 180, 28


def trend_chart(points, *, kind: str) -> dict:
    """Return an inline-SVG line chart of the trend: NPS on −100..100, CSAT top-two share
    on 0..100; periods without answers leave a gap."""
    low, high = (-100.0, 100.0) if kind == Survey.Kind.NPS else (0.0, 100.0)
    n = len(points)
    if not n:
        return {}
    step = (CHART_W - 2 * CHART_PAD) / max(n - 1, 1)

    def y(value: float) -> float:
        return CHART_PAD + (high - value) / (high - low) * (CHART_H - 2 * CHART_PAD)

    segments, current, dots = [], [], []
    for index, point in enumerate(points):
        value = point.summary.nps if kind == Survey.Kind.NPS else point.summary.top_two_share
        if value is None:
            if current:
                segments.append(" ".join(current))
            current = []
            continue
        x = CHART_PAD + index * step
        current.append(f"{x:.1f},{y(value):.1f}")
        dots.append({"x": f"{x:.1f}", "y": f"{y(value):.1f}", "label": point.label,
                     "value": f"{value:.0f}"})
    if current:
        segments.append(" ".join(current))
    axis = [{"y": f"{y(v):.1f}", "label": f"{v:.0f}"}
            for v in ((-100, -50, 0, 50, 100) if kind == Survey.Kind.NPS else (0, 50, 100))]
    labels = [{"x": f"{CHART_PAD + i * step:.1f}", "label": p.label}
              for i, p in enumerate(points) if n <= 8 or i % max(n // 6, 1) == 0]
    return {"width": CHART_W, "height": CHART_H, "segments": segments, "dots": dots,
            "axis": axis, "labels": labels, "left": CHART_PAD, "right": CHART_W - CHART_PAD,
            "bottom": CHART_H - 8}


def results_context(survey: Survey, period: dict) -> dict:
    """Return what the results page shows for a survey over the period."""
    start, end = period["start"], period["end"]
    context: dict = {"kind": survey.kind}
    if survey.kind in (Survey.Kind.NPS, Survey.Kind.CSAT):
        if survey.kind == Survey.Kind.NPS:
            context["summary"] = selectors.nps_summary(start=start, end=end, survey_id=survey.pk)
            trend = selectors.nps_trend(start=start, end=end, grain=period["grain"],
                                        survey_id=survey.pk)
        else:
            context["summary"] = selectors.csat_summary(start=start, end=end,
                                                        survey_id=survey.pk)
            trend = selectors.csat_trend(start=start, end=end, grain=period["grain"],
                                         survey_id=survey.pk)
        context["trend"] = trend
        context["chart"] = trend_chart(trend, kind=survey.kind)
        context["breakdowns"] = [
            (label, selectors.breakdown(start=start, end=end, dimension=dimension,
                                        kind=survey.kind, survey_id=survey.pk))
            for dimension, label in selectors.BREAKDOWNS.items()
        ]
        if period.get("pivot"):
            context["before_after"] = selectors.before_after(
                pivot=period["pivot"], days=period["days"], kind=survey.kind,
                survey_id=survey.pk)
    else:
        context["distribution"] = selectors.loyalty_distribution(
            survey_id=survey.pk, start=start, end=end)
        peak = max((count for _low, _high, count in context["distribution"].bins), default=0)
        context["distribution_bars"] = [
            {"low": low, "high": high, "count": count,
             "width": round(100 * count / peak) if peak else 0}
            for low, high, count in context["distribution"].bins
        ]
    sentiments = selectors.sentiment_counts(survey_id=survey.pk, start=start, end=end)
    context["sentiments"] = [(Sentiment(code).label, code, sentiments[code])
                             for code in Sentiment.values]
    context["themes"] = selectors.themes_top(survey_id=survey.pk, start=start, end=end)
    context["comments"] = selectors.comments_latest(survey_id=survey.pk)
    return context


# ------------------------------------------------------------------ invitations


@admin.register(Invitation)
class InvitationAdmin(PlainTitleMixin, ReadOnlyAdmin):
    """Who was invited when; the links themselves are never shown or stored."""

    list_display = ("member", "survey", "channel", "language", "created_at", "expires_at",
                    "answered_at")
    list_filter = ("survey", "channel", ("answered_at", admin.EmptyFieldListFilter))
    list_select_related = ("member", "survey")
    search_fields = ("member__card_number",)
    readonly_fields = [f.name for f in Invitation._meta.fields if f.name != "link_key"]
    exclude = ("link_key",)
    show_full_result_count = False


# ------------------------------------------------------------------ answers


class SentimentFilter(admin.SimpleListFilter):
    title = _("sentiment")
    parameter_name = "sentiment"

    def lookups(self, request, model_admin):
        return Sentiment.choices

    def queryset(self, request, queryset):
        value = self.value()
        if value in Sentiment.values:
            from django.db.models import Q

            return queryset.filter(Q(sentiment_override=value) | (
                Q(sentiment_override="") & Q(sentiment_auto=value)))
        return queryset


@admin.register(Response)
class ResponseAdmin(PlainTitleMixin, admin.ModelAdmin):
    """Answers with their comment, sentiment and themes; the two may be corrected."""

    form = ResponseClassifyForm
    list_display = ("answered_at", "survey", "member", "score_column", "sentiment_column",
                    "themes_column", "comment_column")
    list_filter = ("survey", "source", SentimentFilter, "touchpoint")
    list_select_related = ("member", "survey")
    search_fields = ("member__card_number",)
    date_hierarchy = None
    show_full_result_count = False
    class Media:
        css = {"all": ["surveys/admin.css"]}

    readonly_fields = ("survey", "member", "score", "comment", "answered_at", "source",
                       "language", "touchpoint", "store", "loyalty_index", "sentiment_auto",
                       "themes", "answers_column")
    fieldsets = (
        (None, {"fields": ("survey", "member", "score", "comment", "answers_column",
                           "answered_at", "source", "language", "touchpoint", "store",
                           "loyalty_index")}),
        (_("Comment analysis"), {
            "fields": ("sentiment_auto", "sentiment_override", "themes", "theme_list"),
            "description": _("The label is computed from word lists in English and Russian "
                             "(see the README); set it by hand when it is wrong."),
        }),
    )

    @admin.display(description=_("score"), ordering="score")
    def score_column(self, response: Response) -> str:
        if response.score is None:
            return "—"
        return format_html('<span class="score-badge {}">{}</span>', _score_class(response),
                           response.score)

    @admin.display(description=_("sentiment"))
    def sentiment_column(self, response: Response) -> str:
        label = response.get_sentiment_display_effective()
        if not label:
            return "—"
        return format_html('<span class="sentiment sentiment-{}">{}</span>{}',
                           response.sentiment, label,
                           " ✎" if response.sentiment_override else "")

    @admin.display(description=_("themes"))
    def themes_column(self, response: Response) -> str:
        return ", ".join(selectors.theme_label(code) for code in response.theme_list)

    @admin.display(description=_("comment"))
    def comment_column(self, response: Response) -> str:
        return _short(response.comment)  # a plain string: the admin escapes it

    @admin.display(description=_("answers"))
    def answers_column(self, response: Response) -> str:
        rows = [f"{answer.question.code}: {answer.text or answer.number}"
                for answer in response.answers.select_related("question")]
        return "; ".join(rows) or "—"

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        services.response_classify(
            response_id=obj.pk, sentiment_override=form.cleaned_data["sentiment_override"],
            themes=form.cleaned_data["theme_list"], actor=request.user,
        )

    def save_related(self, request, form, formsets, change):
        pass


# ------------------------------------------------------------------ follow-ups


class FollowUpStatusFilter(admin.SimpleListFilter):
    """Open and in-progress by default: the queue shows what is left to do."""

    title = _("status")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("todo", _("To do")), ("overdue", _("Overdue")), ("mine", _("Mine")),
                *FollowUp.Status.choices, ("all", _("All"))]

    def choices(self, changelist):
        value = self.value() or "todo"
        for lookup, title in self.lookup_choices:
            yield {"selected": value == lookup, "display": title,
                   "query_string": changelist.get_query_string({self.parameter_name: lookup})}

    def queryset(self, request, queryset):
        value = self.value() or "todo"
        unresolved = queryset.exclude(status=FollowUp.Status.RESOLVED)
        if value == "todo":
            return unresolved
        if value == "overdue":
            return unresolved.filter(due_date__lt=timezone.localdate())
        if value == "mine":
            return unresolved.filter(owner=request.user)
        if value in FollowUp.Status.values:
            return queryset.filter(status=value)
        return queryset


class FollowUpForm(forms.ModelForm):
    class Meta:
        model = FollowUp
        fields = ["owner", "status", "due_date", "notes"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "status" in self.fields:
            self.fields["status"].choices = [
                choice for choice in FollowUp.Status.choices
                if choice[0] != FollowUp.Status.RESOLVED]
            self.fields["status"].help_text = gettext("Resolve with the Resolve button.")
        if "owner" in self.fields:
            self.fields["owner"].queryset = get_user_model().objects.filter(
                is_staff=True, is_active=True).order_by("username")


@admin.register(FollowUp)
class FollowUpAdmin(PlainTitleMixin, admin.ModelAdmin):
    """Support's queue of unhappy answers: owner, status, due date, notes, outcome."""

    form = FollowUpForm
    list_display = ("id", "due_column", "status", "owner", "member", "survey_column",
                    "score_column", "comment_column")
    list_display_links = ("id", "due_column")
    list_filter = (FollowUpStatusFilter, "response__survey", "outcome")
    list_select_related = ("member", "owner", "response__survey")
    search_fields = ("member__card_number", "member__phone")
    ordering = ("due_date", "id")
    show_full_result_count = False
    class Media:
        css = {"all": ["surveys/admin.css"]}

    readonly_fields = ("member_link", "answer_column", "created_at", "outcome", "outcome_note",
                       "goodwill_points", "resolved_at", "resolved_by")
    fieldsets = (
        (None, {"fields": ("member_link", "answer_column", "created_at")}),
        (_("Work"), {"fields": ("owner", "status", "due_date", "notes")}),
        (_("Outcome"), {"fields": ("outcome", "outcome_note", "goodwill_points",
                                   "resolved_at", "resolved_by")}),
    )

    @admin.display(description=_("due"), ordering="due_date")
    def due_column(self, follow_up: FollowUp) -> str:
        text = date_format(follow_up.due_date, "SHORT_DATE_FORMAT")
        if follow_up.is_overdue:
            return format_html('<span class="overdue">{} · {}</span>', text,
                               gettext("overdue"))
        return text

    @admin.display(description=_("survey"))
    def survey_column(self, follow_up: FollowUp) -> str:
        return follow_up.response.survey.name

    @admin.display(description=_("score"))
    def score_column(self, follow_up: FollowUp) -> str:
        return format_html('<span class="score-badge {}">{}</span>',
                           _score_class(follow_up.response), follow_up.response.score)

    @admin.display(description=_("comment"))
    def comment_column(self, follow_up: FollowUp) -> str:
        return _short(follow_up.response.comment)

    @admin.display(description=_("member"))
    def member_link(self, follow_up: FollowUp) -> str:
        member = follow_up.member
        return format_html('<a href="{}">{}</a>', member.get_absolute_url(), str(member))

    @admin.display(description=_("answer"))
    def answer_column(self, follow_up: FollowUp) -> str:
        response = follow_up.response
        return format_html("{} · {} {}<br>{}", response.survey.name, gettext("score"),
                           response.score, response.comment or "—")

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.status == FollowUp.Status.RESOLVED:
            return False
        return super().has_change_permission(request, obj)

    def has_resolve_permission(self, request) -> bool:
        return request.user.has_perm("surveys.resolve_followup")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {"can_resolve": self.has_resolve_permission(request)}
        return super().change_view(request, object_id, form_url, {**extra,
                                                                   **(extra_context or {})})

    def get_urls(self):
        return [
            path("<int:follow_up_id>/resolve/", self.admin_site.admin_view(self.resolve_view),
                 name="surveys_followup_resolve"),
        ] + super().get_urls()

    def resolve_view(self, request: HttpRequest, follow_up_id: int):
        """Record the outcome and, if given, post goodwill points once."""
        if not self.has_resolve_permission(request):
            raise PermissionDenied
        follow_up = get_object_or_404(
            FollowUp.objects.select_related("member", "response__survey"), pk=follow_up_id)
        form = ResolveForm(request.POST or None,
                           initial={"key": secrets.token_urlsafe(16), "goodwill_points": 0})
        if follow_up.status == FollowUp.Status.RESOLVED:
            self.message_user(request, str(services.FOLLOW_UP_RESOLVED), messages.WARNING)
            return HttpResponseRedirect(reverse("admin:surveys_followup_change",
                                                args=[follow_up.pk]))
        if request.method == "POST" and form.is_valid():
            try:
                services.follow_up_resolve(
                    follow_up_id=follow_up.pk, outcome=form.cleaned_data["outcome"],
                    note=form.cleaned_data["note"],
                    goodwill_points=form.cleaned_data["goodwill_points"] or 0,
                    actor=request.user,
                )
            except ValidationError as error:
                if hasattr(error, "error_dict"):
                    for field, errors in error.message_dict.items():
                        form.add_error(field if field in form.fields else None, errors)
                else:
                    form.add_error(None, error.messages)
            else:
                self.message_user(request, gettext("Follow-up #%(id)s resolved.") % {
                    "id": follow_up.pk}, messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:surveys_followup_changelist"))
        return TemplateResponse(request, "admin/surveys/followup/resolve.html", {
            **self.admin_site.each_context(request), "opts": self.opts,
            "original": follow_up, "follow_up": follow_up, "form": form,
            "title": gettext("Resolve follow-up #%(id)s") % {"id": follow_up.pk},
        })
