"""Admin screens of campaigns: RFM scores and rules, segments with a live count, campaigns
with their life cycle, preview, test send and results, and the messages sent.

Thin by design: every write goes through ``campaigns.services``, every figure comes from a
selector. Extra pages check permissions themselves (``admin_view`` only checks staff).
"""

from __future__ import annotations

import csv

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from campaigns import services
from campaigns.forms import (
    CRITERIA_FIELDS,
    CampaignForm,
    MessagePreviewForm,
    SegmentForm,
    SegmentPreviewForm,
)
from campaigns.models import (
    Campaign,
    CampaignRecipient,
    CampaignSettings,
    CampaignVariant,
    ContestDraw,
    MemberRfm,
    MessageDelivery,
    RfmRun,
    RfmSegment,
    Segment,
    Unsubscribe,
)
from campaigns.rfm import RFM_RULES
from campaigns.selectors import (
    campaign_progress,
    campaign_results,
    member_template_contexts,
    offer_favourite_text,
    segment_criteria_queryset,
    segment_members,
    segment_preview,
)
from members.admin import ReadOnlyAdmin
from members.paginators import LargeTablePaginator
from rewards.services import voucher_code_generate


@admin.register(CampaignSettings)
class CampaignSettingsAdmin(admin.ModelAdmin):
    list_display = ["__str__", "rfm_window_days", "frequency_cap_per_week",
                    "send_rate_per_second"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        from campaigns.selectors import campaign_settings_get

        row = campaign_settings_get()
        return HttpResponseRedirect(reverse("admin:campaigns_campaignsettings_change",
                                            args=[row.pk]))


# ------------------------------------------------------------------ RFM


@admin.register(MemberRfm)
class MemberRfmAdmin(ReadOnlyAdmin):
    list_display = ["member", "segment", "recency_score", "frequency_score", "monetary_score",
                    "recency_days", "frequency", "monetary", "favourite_category"]
    list_filter = ["segment", "recency_score", "frequency_score", "monetary_score"]
    list_select_related = ["member", "favourite_category"]
    search_fields = ["member__card_number"]
    paginator = LargeTablePaginator
    show_full_result_count = False
    change_list_template = "admin/campaigns/memberrfm/change_list.html"

    def changelist_view(self, request, extra_context=None):
        counts = dict(MemberRfm.objects.values_list("segment").annotate(n=Count("member_id"))
                      .values_list("segment", "n"))
        rules = [
            {"label": RfmSegment(rule.segment).label, "code": rule.segment,
             "recency": rule.recency, "frequency": rule.frequency, "meaning": rule.meaning,
             "count": counts.get(rule.segment, 0)}
            for rule in RFM_RULES
        ]
        return super().changelist_view(request, {
            **(extra_context or {}), "rfm_rules": rules,
            "rfm_last_run": RfmRun.objects.first(),
            "rfm_grid": _rfm_grid(),
        })


def _rfm_grid() -> list[dict]:
    """Return the R x F grid (rows R 5..1) naming each cell's segment, for the rules page."""
    from campaigns.rfm import rfm_segment_for

    return [
        {"r": r, "cells": [
            {"f": f, "segment": rfm_segment_for(r, f),
             "label": RfmSegment(rfm_segment_for(r, f)).label}
            for f in range(1, 6)
        ]}
        for r in range(5, 0, -1)
    ]


@admin.register(RfmRun)
class RfmRunAdmin(ReadOnlyAdmin):
    list_display = ["computed_on", "window_days", "members_scored", "seconds", "created_at"]


# ------------------------------------------------------------------ segments


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    form = SegmentForm
    list_display = ["name", "kind", "last_count", "last_counted_at", "created_by"]
    view_on_site = False  # the back-office is the site: the link would lead here
    list_filter = ["kind"]
    search_fields = ["name"]
    list_select_related = ["created_by"]
    change_form_template = "admin/campaigns/segment/change_form.html"
    fieldsets = [
        (None, {"fields": ["name", "description", "kind"]}),
        (_("Programme"), {"fields": ["tiers", "rfm_segments", "favourite_categories",
                                     "balance_min", "balance_max", "expiring_within_days",
                                     "expiring_points_min"]}),
        (_("Purchases"), {"fields": ["days_since_purchase_min", "days_since_purchase_max",
                                     "window_days", "spend_min", "spend_max",
                                     "purchases_min", "purchases_max"]}),
        (_("Who"), {"fields": ["enrolled_from", "enrolled_to", "cities", "age_min",
                               "age_max", "genders", "birthday_months", "email_consent",
                               "sms_consent"]}),
        (_("Static list"), {"fields": ["card_list"]}),
    ]

    def save_model(self, request, obj, form, change):
        services.segment_save(segment=obj, actor=request.user)
        if form.member_ids is not None:
            services.segment_static_members_set(segment=obj, member_ids=form.member_ids)

    def get_urls(self):
        return [
            path("preview/", self.admin_site.admin_view(self.preview_view),
                 name="campaigns_segment_preview"),
        ] + super().get_urls()

    def preview_view(self, request: HttpRequest):
        """Return the live count and sample for the criteria being edited (POST)."""
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        if request.method != "POST":
            return JsonResponse({"error": "POST"}, status=405)
        segment_id = request.POST.get("segment_id")
        instance = Segment.objects.filter(id=segment_id).first() if segment_id else None
        form = SegmentPreviewForm(request.POST, instance=instance)
        form.fields["card_list"].required = False
        if not form.is_valid():
            # Only the criteria matter for a count; a missing name is for the save.
            errors = {
                name: [f"{form.fields[name].label}: {error}" for error in errors]
                for name, errors in form.errors.items() if name in CRITERIA_FIELDS
            }
            if errors:
                return JsonResponse({"errors": errors}, status=400)
        if form.cleaned_data.get("kind") == Segment.Kind.STATIC and instance is not None \
                and instance.kind == Segment.Kind.STATIC:
            members = segment_members(instance)
        else:
            members = segment_criteria_queryset(form.criteria())
        preview = segment_preview(members)
        html = render_to_string("admin/campaigns/segment/preview.html",
                                {"preview": preview}, request=request)
        return JsonResponse({"count": preview.count, "html": html})

    def render_change_form(self, request, context, add=False, change=False, form_url="",
                           obj=None):
        preview = None
        if obj is not None:
            preview = segment_preview(segment_members(obj))
        context["segment_preview"] = preview
        context["preview_url"] = reverse("admin:campaigns_segment_preview")
        return super().render_change_form(request, context, add, change, form_url, obj)


# ------------------------------------------------------------------ campaigns

# The fields of "What members get" each kind uses; the others are hidden on the form.
KIND_FIELDS = {
    Campaign.Kind.BONUS_POINTS: ("bonus_points",),
    Campaign.Kind.MULTIPLIER: ("multiplier",),
    Campaign.Kind.OFFER: ("reward", "offer_discount_percent"),
    Campaign.Kind.NEWSLETTER: (),
    Campaign.Kind.WELCOME: (),
    Campaign.Kind.BIRTHDAY: (),
    Campaign.Kind.REACTIVATION: ("inactive_days",),
    Campaign.Kind.EXPIRING: ("expiring_within_days",),
    Campaign.Kind.CONTEST: ("winners",),
}


class CampaignVariantInline(admin.StackedInline):
    model = CampaignVariant
    extra = 0
    min_num = 1
    fields = [("code", "weight"), "subject_en", "body_en", "subject_ru", "body_ru"]

    def has_change_permission(self, request, obj=None):
        if obj is not None and not obj.is_editable:
            return False
        return super().has_change_permission(request, obj)

    def has_add_permission(self, request, obj=None):
        if obj is not None and not obj.is_editable:
            return False
        return super().has_add_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and not obj.is_editable:
            return False
        return super().has_delete_permission(request, obj)


_ACTIONS = {
    # action: (service, permission it needs, past-tense message)
    "submit": (services.campaign_submit, "change", _("Sent for approval.")),
    "approve": (services.campaign_approve, "approve", _("Approved: the campaign is scheduled.")),
    "reject": (services.campaign_reject, "approve", _("Sent back to draft.")),
    "launch": (services.campaign_launch, "approve", _("Launched: sending has started.")),
    "cancel": (services.campaign_cancel, "change", _("Cancelled.")),
}


# The columns of a campaign's results CSV, in the user's language.
RESULTS_CSV_HEADERS = (
    _("Group"), _("Recipients"), _("Reached"), _("Converted"), _("Conversion rate"),
    _("Orders"), _("Revenue"), _("Revenue per recipient"), _("Average order value"),
    _("Points spent"), _("Lift (points of %)"), _("95% CI low"), _("95% CI high"),
    _("p-value"), _("Winner"),
)

@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    form = CampaignForm
    inlines = [CampaignVariantInline]
    list_display = ["name", "kind", "status_badge", "segment", "starts_at", "ends_at",
                    "recipients_total", "created_by"]
    view_on_site = False
    list_filter = ["status", "kind", "channel"]
    search_fields = ["name"]
    list_select_related = ["segment", "created_by"]
    change_form_template = "admin/campaigns/campaign/change_form.html"
    # "What members get" shows only the fields of the kind chosen (campaign_form.js);
    # without JavaScript all of them show, each help text naming its kind.
    fieldsets = [
        (None, {"fields": ["name", "kind", "description", "segment", "channel",
                           ("starts_at", "ends_at")]}),
        (_("What members get"), {"fields": [
            "bonus_points", "multiplier", "reward", "offer_discount_percent", "inactive_days",
            "expiring_within_days", "winners"]}),
        (_("Budget"), {"fields": [("budget_points", "budget_vouchers")]}),
        (_("Measurement"), {"fields": [("control_percent", "attribution_days")]}),
    ]

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: Campaign):
        return format_html('<span class="campaign-status campaign-{}">{}</span>',
                           obj.status, obj.get_status_display())

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and not obj.is_editable:
            return [f for fs in self.fieldsets for row in fs[1]["fields"]
                    for f in (row if isinstance(row, tuple) else (row,))]
        return []

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.status != Campaign.Status.DRAFT:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:campaign_id>/do/<str:action>/", view(self.action_view),
                 name="campaigns_campaign_action"),
            path("<int:campaign_id>/results/", view(self.results_view),
                 name="campaigns_campaign_results"),
            path("<int:campaign_id>/results.csv", view(self.results_csv_view),
                 name="campaigns_campaign_results_csv"),
            path("<int:campaign_id>/preview/", view(self.preview_view),
                 name="campaigns_campaign_preview"),
            path("<int:campaign_id>/deliveries/", view(self.deliveries_view),
                 name="campaigns_campaign_deliveries"),
        ] + super().get_urls()

    def _allowed(self, request, need: str) -> bool:
        if need == "approve":
            return request.user.has_perm("campaigns.approve_campaign")
        return self.has_change_permission(request)

    def action_view(self, request: HttpRequest, campaign_id: int, action: str):
        """Move a campaign along its life cycle (POST only) through the services."""
        if action not in _ACTIONS:
            raise PermissionDenied
        service, need, done = _ACTIONS[action]
        if not self._allowed(request, need):
            raise PermissionDenied
        return require_POST(self._action_do)(request, campaign_id, service, done)

    def _action_do(self, request, campaign_id, service, done):
        campaign = get_object_or_404(Campaign, id=campaign_id)
        try:
            service(campaign_id=campaign.id, actor=request.user)
        except ValidationError as error:
            for message in error.messages:
                self.message_user(request, message, messages.ERROR)
        except PermissionDenied as error:
            self.message_user(request, str(error), messages.ERROR)
        else:
            self.message_user(request, done, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:campaigns_campaign_change",
                                            args=[campaign.id]))

    def render_change_form(self, request, context, add=False, change=False, form_url="",
                           obj=None):
        context["kind_fields"] = {
            "fields": sorted({name for names in KIND_FIELDS.values() for name in names}),
            "by_kind": {kind: list(names) for kind, names in KIND_FIELDS.items()},
            "kind": obj.kind if obj is not None else "",
        }
        if obj is not None:
            user = request.user
            can_change = self.has_change_permission(request)
            can_approve = user.has_perm("campaigns.approve_campaign")
            status = obj.status
            context.update({
                "progress": campaign_progress(campaign=obj),
                "can_submit": can_change and status == Campaign.Status.DRAFT,
                "can_approve": can_approve and status == Campaign.Status.PENDING_APPROVAL
                and obj.created_by_id != user.id,
                "approval_is_self": status == Campaign.Status.PENDING_APPROVAL
                and obj.created_by_id == user.id,
                "can_reject": can_approve and status in (Campaign.Status.PENDING_APPROVAL,
                                                         Campaign.Status.SCHEDULED),
                "can_launch": can_approve and status == Campaign.Status.SCHEDULED,
                "can_cancel": can_change and status not in (Campaign.Status.FINISHED,
                                                            Campaign.Status.CANCELLED),
                "draw": ContestDraw.objects.filter(campaign_id=obj.id).first(),
            })
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _campaign_for_view(self, request, campaign_id: int) -> Campaign:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(Campaign.objects.select_related("segment"), id=campaign_id)

    def results_view(self, request: HttpRequest, campaign_id: int):
        """Show conversion, revenue and lift per variant against the control group."""
        campaign = self._campaign_for_view(request, campaign_id)
        return TemplateResponse(request, "admin/campaigns/campaign/results.html", {
            **self.admin_site.each_context(request),
            "opts": self.opts, "original": campaign, "campaign": campaign,
            "title": gettext("Results: %(name)s") % {"name": campaign.name},
            "results": campaign_results(campaign=campaign),
            "progress": campaign_progress(campaign=campaign),
        })

    def results_csv_view(self, request: HttpRequest, campaign_id: int):
        """The results table as CSV."""
        campaign = self._campaign_for_view(request, campaign_id)
        results = campaign_results(campaign=campaign)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.id}.csv"'
        response.write("\ufeff")
        writer = csv.writer(response)
        writer.writerow([str(header) for header in RESULTS_CSV_HEADERS])
        rows = [*results.groups, *([results.control] if results.control else [])]
        for group in rows:
            test = group.test
            writer.writerow([
                group.label, group.recipients, group.reached, group.converted,
                f"{group.conversion_rate:.4f}", group.orders, group.revenue,
                group.revenue_per_recipient, group.average_order_value, group.points_spent,
                f"{test.lift * 100:.2f}" if test else "",
                f"{test.ci_low * 100:.2f}" if test else "",
                f"{test.ci_high * 100:.2f}" if test else "",
                f"{test.p_value:.4f}" if test and test.p_value is not None else "",
                gettext("yes") if results.winner is group else "",
            ])
        return response

    def preview_view(self, request: HttpRequest, campaign_id: int):
        """Show a variant filled in for a chosen member; optionally send it to oneself."""
        campaign = self._campaign_for_view(request, campaign_id)
        form = MessagePreviewForm(request.POST or request.GET or None, campaign=campaign)
        rendered = None
        if form.is_bound and form.is_valid():
            member = form.cleaned_data["member"]
            variant = form.cleaned_data["variant"]
            context = member_template_contexts(
                member_ids=[member.id], expiring_within_days=campaign.expiring_within_days
            )[member.id]
            if campaign.kind == Campaign.Kind.OFFER:
                context["offer"] = campaign.reward.name if campaign.reward_id else (
                    offer_favourite_text(percent=campaign.offer_discount_percent,
                                         category=context["favourite_category"] or ""))
                # A code in the real format, not issued: the send issues each member's own.
                context["voucher_code"] = voucher_code_generate() if campaign.reward_id else ""
            if campaign.kind == Campaign.Kind.BONUS_POINTS:
                context["bonus_points"] = campaign.bonus_points
            rendered = services.message_render(variant=variant, language=context["language"],
                                               context=context)
            if request.method == "POST" and "test_send" in request.POST:
                if not request.user.email:
                    self.message_user(request, gettext(
                        "Your user has no e-mail address: add one to receive test sends."),
                        messages.ERROR)
                else:
                    services.campaign_test_send(
                        campaign_id=campaign.id, variant_id=variant.id, member_id=member.id,
                        actor=request.user, email=request.user.email,
                    )
                    self.message_user(request, gettext("Test sent to %(email)s.") % {
                        "email": request.user.email}, messages.SUCCESS)
        return TemplateResponse(request, "admin/campaigns/campaign/preview.html", {
            **self.admin_site.each_context(request),
            "opts": self.opts, "original": campaign, "campaign": campaign,
            "title": gettext("Preview: %(name)s") % {"name": campaign.name},
            "form": form, "rendered": rendered,
        })

    def deliveries_view(self, request: HttpRequest, campaign_id: int):
        """Go to the messages of this campaign."""
        self._campaign_for_view(request, campaign_id)
        return HttpResponseRedirect(
            reverse("admin:campaigns_messagedelivery_changelist") + f"?campaign__id__exact="
            f"{campaign_id}"
        )


@admin.register(CampaignRecipient)
class CampaignRecipientAdmin(ReadOnlyAdmin):
    list_display = ["campaign", "member", "variant", "is_control", "status", "occasion",
                    "reference_at", "processed_at"]
    list_filter = ["status", "is_control"]
    list_select_related = ["campaign", "member", "variant"]
    search_fields = ["member__card_number"]
    raw_id_fields = ["campaign", "member", "variant", "delivery"]
    paginator = LargeTablePaginator
    show_full_result_count = False


@admin.register(ContestDraw)
class ContestDrawAdmin(ReadOnlyAdmin):
    list_display = ["campaign", "eligible_count", "seed", "drawn_by", "drawn_at"]
    list_select_related = ["campaign", "drawn_by"]


# ------------------------------------------------------------------ messages


@admin.register(MessageDelivery)
class MessageDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "member", "channel", "purpose", "campaign", "subject",
                    "status", "skip_reason"]
    list_filter = ["status", "channel", "purpose", "skip_reason"]
    list_select_related = ["member", "campaign"]
    search_fields = ["member__card_number", "address"]
    raw_id_fields = ["member", "campaign", "actor"]
    paginator = LargeTablePaginator
    show_full_result_count = False
    readonly_fields = ["idempotency_key"]


@admin.register(Unsubscribe)
class UnsubscribeAdmin(ReadOnlyAdmin):
    list_display = ["member", "channel", "source", "created_at"]
    list_filter = ["channel", "source"]
    list_select_related = ["member"]
    search_fields = ["member__card_number"]
    raw_id_fields = ["member", "delivery"]
