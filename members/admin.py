"""Admin screens for support staff: members, their ledger, purchases and approvals.

Thin by design: the pages read through selectors and every write goes through a
service in ``members.services``.
"""

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.humanize.templatetags.humanize import intcomma
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.text import capfirst
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from members import selectors, services
from members.forms import DecisionForm, MemberAdminForm, PointsAdjustForm, ReasonForm
from members.models import (
    ConfigChange,
    Member,
    MemberStatusChange,
    PointsAdjustment,
    PointsEntry,
    ProductCategory,
    ProgrammeSettings,
    Purchase,
    PurchaseLine,
    Store,
)
from members.paginators import LargeTablePaginator
from members.panels import member_panels_render
from members.phone import phone_display
from members.privacy_admin import member_privacy_links, privacy_urls
from members.templatetags.points import points_signed

LEDGER_PAGE_SIZE = 20
PURCHASES_PAGE_SIZE = 10


def _page_number(request: HttpRequest, name: str) -> int:
    """Return a page number from the query string; anything malformed means page 1."""
    try:
        return max(1, int(request.GET.get(name, 1)))
    except (TypeError, ValueError):
        return 1


class ReadOnlyAdmin(admin.ModelAdmin):
    """An admin whose rows nobody changes here: they come from services or imports."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    """Find a member in seconds and see their whole story on one page."""

    form = MemberAdminForm
    list_display = (
        "card_number", "name_column", "phone_column", "email", "status_column",
        "balance_column", "last_purchase_column", "enrolled_column",
    )
    list_display_links = ("card_number", "name_column")
    list_filter = ("status", "enrolled_at", "email_consent", "sms_consent", "source_channel")
    search_fields = ("card_number",)  # the real search is get_search_results
    search_help_text = _(
        "Card number, phone in any format, e-mail, or part of the name (e.g. “Petrov” "
        "or “Ivan Petr”)."
    )
    autocomplete_fields = ("referred_by",)
    readonly_fields = (
        "status", "points_balance", "last_purchase_at", "email_consent_at", "sms_consent_at",
        "created_at", "updated_at",
    )
    fieldsets = (
        (_("Card and identity"), {
            "fields": ("card_number", ("first_name", "last_name"), ("birth_date", "gender")),
        }),
        (_("Contact"), {"fields": ("phone", "email", "city", "language")}),
        (_("Consent"), {
            "fields": (("email_consent", "email_consent_at"), ("sms_consent", "sms_consent_at")),
        }),
        (_("Programme"), {
            "fields": ("enrolled_at", "source_channel", "referred_by", "status",
                       "points_balance", "last_purchase_at", ("created_at", "updated_at")),
        }),
    )
    paginator = LargeTablePaginator
    show_full_result_count = False
    # Facet counts would run a COUNT per filter choice over a million members.
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    ordering = ("-id",)
    change_form_template = "admin/members/member/change_form.html"
    change_list_template = "admin/members/member/change_list.html"

    # ---------------------------------------------------------------- list
    @admin.display(description=pgettext_lazy("person", "name"), ordering="last_name")
    def name_column(self, member: Member) -> str:
        return member.full_name

    @admin.display(description=_("phone"))
    def phone_column(self, member: Member) -> str:
        return format_html('<span class="nowrap">{}</span>', phone_display(member.phone))

    @admin.display(description=_("status"), ordering="status")
    def status_column(self, member: Member) -> str:
        return format_html(
            '<span class="badge badge-{}">{}</span>', member.status, member.get_status_display()
        )

    @admin.display(description=_("points"), ordering="points_balance")
    def balance_column(self, member: Member) -> str:
        return format_html('<span class="num">{}</span>', intcomma(member.points_balance))

    @admin.display(description=_("last purchase"), ordering="last_purchase_at")
    def last_purchase_column(self, member: Member) -> str:
        if member.last_purchase_at is None:
            return "—"
        return date_format(timezone.localtime(member.last_purchase_at), "SHORT_DATE_FORMAT")

    @admin.display(description=_("enrolled"), ordering="enrolled_at")
    def enrolled_column(self, member: Member) -> str:
        return date_format(timezone.localtime(member.enrolled_at), "SHORT_DATE_FORMAT")

    def get_search_results(self, request, queryset, search_term):
        return selectors.member_search(queryset=queryset, query=search_term), False

    # ---------------------------------------------------------------- permissions
    def has_adjust_points_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("members.adjust_points")

    def has_delete_permission(self, request, obj=None) -> bool:
        # A member with history is never deleted: close or block them instead.
        return False

    # ---------------------------------------------------------------- saving
    def save_model(self, request, obj, form, change):
        services.member_save(member=obj, changed_fields=form.changed_data, actor=request.user)

    # ---------------------------------------------------------------- member page
    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        member = self.get_object(request, object_id)
        if member is not None and self.has_view_or_change_permission(request, member):
            extra_context.update(self._member_story_context(request, member))
            extra_context.update(title=member.full_name, subtitle=None)
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(
            request, {"title": gettext("Members"), **(extra_context or {})}
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # On the member page the form is the profile: "save and add another" invites mistakes.
        context.update(show_save_and_add_another=False)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _member_story_context(self, request: HttpRequest, member: Member) -> dict:
        """Return the panels of the member page: a fixed number of queries, no per-row ones."""
        ledger_page = Paginator(
            selectors.member_ledger(member_id=member.pk), LEDGER_PAGE_SIZE
        ).get_page(_page_number(request, "ledger_page"))
        purchases_page = Paginator(
            selectors.member_purchases(member_id=member.pk), PURCHASES_PAGE_SIZE
        ).get_page(_page_number(request, "purchases_page"))
        ledger_ids = [entry.pk for entry in ledger_page.object_list]
        return {
            "member": member,
            "reversed_ids": set(
                PointsEntry.objects.filter(reverses_id__in=ledger_ids)
                .values_list("reverses_id", flat=True)
            ),
            "member_phone": phone_display(member.phone),
            "ledger_page": ledger_page,
            "purchases_page": purchases_page,
            "pending_adjustments": list(selectors.adjustments_pending(member_id=member.pk)),
            "status_changes": list(
                MemberStatusChange.objects.filter(member=member).select_related("actor")[:20]
            ),
            "can_adjust": self.has_adjust_points_permission(request)
            and member.status == Member.Status.ACTIVE,
            "can_adjust_any": self.has_adjust_points_permission(request),
            "can_change_status": self.has_change_permission(request, member),
            "can_approve": request.user.has_perm("members.approve_adjustment"),
            "currency": _currency(),
            "member_panels": member_panels_render(request, member),
            **member_privacy_links(request, member),
        }

    # ---------------------------------------------------------------- extra pages
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:member_id>/adjust/", wrap(self.adjust_view),
                 name="members_member_adjust"),
            path("<int:member_id>/status/<str:status>/", wrap(self.status_view),
                 name="members_member_status"),
            path("<int:member_id>/reverse/<int:entry_id>/", wrap(self.reverse_view),
                 name="members_member_reverse"),
            *privacy_urls(self),
        ] + super().get_urls()

    def _member_or_404(self, request, member_id: int) -> Member:
        member = get_object_or_404(Member, pk=member_id)
        if not self.has_view_or_change_permission(request, member):
            raise PermissionDenied
        return member

    def _page(self, request, template: str, title: str, member: Member, **context):
        return TemplateResponse(request, template, {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "member": member,
            "member_url": reverse("admin:members_member_change", args=[member.pk]),
            **context,
        })

    def adjust_view(self, request: HttpRequest, member_id: int):
        """Adjust a member's points with a reason (Support); large ones wait for approval."""
        if not self.has_adjust_points_permission(request):
            raise PermissionDenied
        member = self._member_or_404(request, member_id)
        form = PointsAdjustForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                adjustment = services.points_adjust(
                    member_id=member.pk,
                    amount=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                    actor=request.user,
                    idempotency_key=f"form:{form.cleaned_data['idempotency_key']}",
                )
            except services.PointsRefused as refusal:
                form.add_error(None, str(refusal))
            else:
                if adjustment.status == PointsAdjustment.Status.PENDING:
                    messages.warning(request, gettext(
                        "The adjustment of %(amount)s points is above the approval threshold: "
                        "it waits for a second person and the balance is unchanged for now."
                    ) % {"amount": points_signed(adjustment.amount)})
                else:
                    member.refresh_from_db(fields=["points_balance"])
                    messages.success(request, gettext(
                        "%(amount)s points posted. New balance: %(balance)s."
                    ) % {"amount": points_signed(adjustment.amount),
                         "balance": intcomma(member.points_balance)})
                return HttpResponseRedirect(
                    reverse("admin:members_member_change", args=[member.pk])
                )
        return self._page(
            request, "admin/members/member/adjust.html", gettext("Adjust points"), member,
            form=form,
            threshold=selectors.programme_settings_get().adjustment_approval_threshold,
        )

    def status_view(self, request: HttpRequest, member_id: int, status: str):
        """Block, unblock or close a member with a reason kept in the history."""
        member = self._member_or_404(request, member_id)
        if not self.has_change_permission(request, member):
            raise PermissionDenied
        if status not in Member.Status.values:
            raise Http404("Unknown member status.")
        form = ReasonForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                services.member_status_change(
                    member_id=member.pk, status=status,
                    reason=form.cleaned_data["reason"], actor=request.user,
                )
            except services.PointsRefused as refusal:
                form.add_error(None, str(refusal))
            else:
                messages.success(request, gettext("The member is now %(status)s.") % {
                    "status": Member.Status(status).label.lower()})
                return HttpResponseRedirect(
                    reverse("admin:members_member_change", args=[member.pk])
                )
        titles = {
            Member.Status.BLOCKED: gettext("Block member"),
            Member.Status.ACTIVE: gettext("Unblock member"),
            Member.Status.CLOSED: gettext("Close membership"),
        }
        return self._page(
            request, "admin/members/member/status.html", titles[status], member,
            form=form, new_status=Member.Status(status),
        )

    def reverse_view(self, request: HttpRequest, member_id: int, entry_id: int):
        """Correct a ledger row by posting its opposite, with a reason."""
        if not self.has_adjust_points_permission(request):
            raise PermissionDenied
        member = self._member_or_404(request, member_id)
        entry = get_object_or_404(PointsEntry, pk=entry_id, member_id=member.pk)
        form = ReasonForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                posting = services.points_reverse(
                    entry_id=entry.pk, reason=form.cleaned_data["reason"], actor=request.user
                )
            except services.PointsRefused as refusal:
                form.add_error(None, str(refusal))
            else:
                if posting.created:
                    messages.success(request, gettext("The entry was reversed."))
                else:
                    messages.info(request, gettext("This entry had already been reversed."))
                return HttpResponseRedirect(
                    reverse("admin:members_member_change", args=[member.pk])
                )
        return self._page(
            request, "admin/members/member/reverse.html", gettext("Reverse a ledger entry"),
            member, form=form, entry=entry,
        )


def _currency() -> str:
    return settings.LOYALTY_CURRENCY


@admin.register(PointsEntry)
class PointsEntryAdmin(ReadOnlyAdmin):
    """The ledger, for reading: rows are never edited or deleted, not even by a superuser."""

    list_display = (
        "created_at", "member", "kind", "amount", "balance_after", "reason", "actor",
        "reference",
    )
    list_filter = ("kind", "created_at")
    list_select_related = ("member", "actor")
    search_fields = ("member__card_number", "reference")
    search_help_text = _("Card number of the member, or a source such as adjustment:12.")
    paginator = LargeTablePaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    ordering = ("-id",)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if ":" in term:
            return queryset.filter(reference=term), False
        return queryset.filter(member__card_number=term), False


class PurchaseLineInline(admin.TabularInline):
    model = PurchaseLine
    fields = ("sku", "category", "quantity", "amount")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyAdmin):
    """Receipts as the cash registers sent them; they are recorded by the POS or imports."""

    list_display = (
        "purchased_at", "store", "receipt_number", "member", "channel", "total", "discount",
        "item_count",
    )
    list_filter = ("channel", "store", "purchased_at")
    list_select_related = ("store", "member")
    search_fields = ("receipt_number",)
    search_help_text = _("Receipt number, or the member's card number.")
    inlines = (PurchaseLineInline,)
    paginator = LargeTablePaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    ordering = ("-purchased_at", "-id")

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return (
            queryset.filter(receipt_number=term) | queryset.filter(member__card_number=term)
        ), False


@admin.register(PointsAdjustment)
class PointsAdjustmentAdmin(ReadOnlyAdmin):
    """Manual adjustments; the pending ones are the approval queue for a second person."""

    list_display = (
        "requested_at", "member", "amount", "reason", "requested_by", "status",
        "decided_by", "decide_column",
    )
    list_filter = ("status", "requested_at")
    list_select_related = ("member", "requested_by", "decided_by")
    search_fields = ("member__card_number",)
    ordering = ("-id",)

    @admin.display(description=_("decision"))
    def decide_column(self, adjustment: PointsAdjustment) -> str:
        if adjustment.status != PointsAdjustment.Status.PENDING:
            return "—"
        url = reverse("admin:members_pointsadjustment_decide", args=[adjustment.pk])
        return format_html('<a class="button" href="{}">{}</a>', url, gettext("Review"))

    def get_urls(self):
        return [
            path("<int:adjustment_id>/decide/", self.admin_site.admin_view(self.decide_view),
                 name="members_pointsadjustment_decide"),
        ] + super().get_urls()

    def decide_view(self, request: HttpRequest, adjustment_id: int):
        """Approve or reject someone else's adjustment (maker-checker)."""
        if not request.user.has_perm("members.approve_adjustment"):
            raise PermissionDenied
        adjustment = get_object_or_404(
            PointsAdjustment.objects.select_related("member", "requested_by", "decided_by"),
            pk=adjustment_id,
        )
        form = DecisionForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            decide = (
                services.points_adjustment_approve
                if "approve" in request.POST else services.points_adjustment_reject
            )
            try:
                decided = decide(
                    adjustment_id=adjustment.pk, actor=request.user,
                    note=form.cleaned_data["note"],
                )
            except services.PointsRefused as refusal:
                form.add_error(None, str(refusal))
            else:
                if decided.status == PointsAdjustment.Status.APPLIED:
                    messages.success(request, gettext(
                        "Adjustment approved: %(amount)s points posted. New balance: %(balance)s."
                    ) % {"amount": points_signed(decided.amount),
                         "balance": intcomma(decided.entry.balance_after)})
                else:
                    messages.success(request, gettext(
                        "Adjustment rejected: the balance is unchanged."
                    ))
                return HttpResponseRedirect(
                    reverse("admin:members_member_change", args=[adjustment.member_id])
                )
        return TemplateResponse(request, "admin/members/pointsadjustment/decide.html", {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Approve or reject an adjustment"),
            "adjustment": adjustment,
            "member": adjustment.member,
            "form": form,
            "is_maker": adjustment.requested_by_id == request.user.pk,
        })


@admin.register(MemberStatusChange)
class MemberStatusChangeAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "member", "from_status", "to_status", "reason", "actor")
    list_filter = ("to_status", "created_at")
    list_select_related = ("member", "actor")
    ordering = ("-id",)


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "city")
    search_fields = ("code", "name", "city")
    ordering = ("code",)


@admin.register(ProductCategory)
class ProductCategoryAdmin(admin.ModelAdmin):
    list_display = ("code", "name")
    search_fields = ("code", "name")


@admin.register(ProgrammeSettings)
class ProgrammeSettingsAdmin(admin.ModelAdmin):
    """The single settings row: the list goes straight to its form."""

    fieldsets = (
        (_("Points"), {
            "fields": ("adjustment_approval_threshold", "earn_rate", "return_window_days",
                       "points_expiry_months", "point_value"),
        }),
        (_("Tiers"), {
            "fields": ("tier_basis", "tier_window", "tier_window_months",
                       "tier_downgrade_policy"),
        }),
        (_("Bonuses"), {
            "fields": ("welcome_points", ("birthday_points", "birthday_timing"),
                       ("referral_referrer_points", "referral_referred_points"),
                       "referral_min_purchase", "referral_monthly_limit"),
        }),
        (None, {"fields": ("updated_at",)}),
    )
    readonly_fields = ("updated_at",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        settings_row = selectors.programme_settings_get()
        return HttpResponseRedirect(
            reverse("admin:members_programmesettings_change", args=[settings_row.pk])
        )


# ------------------------------------------------------------------ audit log


@admin.register(ConfigChange)
class ConfigChangeAdmin(ReadOnlyAdmin):
    """Who changed which part of the programme's configuration, when, from what to what."""

    list_display = (
        "changed_at", "actor_column", "action", "kind_column", "object_repr", "fields_column",
    )
    list_filter = (
        "action", ("content_type", admin.RelatedOnlyFieldListFilter),
        ("actor", admin.RelatedOnlyFieldListFilter), "changed_at",
    )
    list_select_related = ("actor", "content_type")
    search_fields = ("object_repr", "actor_name", "object_id")
    search_help_text = _("Name of the changed object, login of the person, or object id.")
    date_hierarchy = "changed_at"
    ordering = ("-changed_at", "-id")
    fields = (
        "changed_at", "actor_column", "source", "action", "content_type", "object_id",
        "object_repr", "changes_table",
    )
    readonly_fields = fields

    @admin.display(description=_("changed by"), ordering="actor_name")
    def actor_column(self, change: ConfigChange) -> str:
        return change.actor_name or gettext("system")

    @admin.display(description=_("kind of object"), ordering="content_type")
    def kind_column(self, change: ConfigChange) -> str:
        model = change.content_type.model_class()
        return capfirst(model._meta.verbose_name) if model else change.content_type.model

    @admin.display(description=_("fields"))
    def fields_column(self, change: ConfigChange) -> str:
        names = change.changed_fields or []
        shown = ", ".join(names[:6])
        return shown + (" …" if len(names) > 6 else "")

    @admin.display(description=_("before → after"))
    def changes_table(self, change: ConfigChange) -> str:
        before, after = change.before or {}, change.after or {}
        rows = format_html_join(
            "", "<tr><th>{}</th><td>{}</td><td>{}</td></tr>",
            ((name, _audit_value(before.get(name)), _audit_value(after.get(name)))
             for name in change.changed_fields or sorted({*before, *after})),
        )
        return format_html(
            '<table class="audit-changes"><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr>'
            "</thead><tbody>{}</tbody></table>",
            gettext("field"), gettext("before"), gettext("after"), rows,
        )


def _audit_value(value) -> str:
    """Return one logged value as text (lists joined, nothing as a dash)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{key}: {item}" for key, item in value.items())
    return str(value)


# The import screens live beside the importing code.
from members.importing import admin as _import_admin  # noqa: E402, F401
