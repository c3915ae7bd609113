"""Admin screens of the programme: tiers, earning rules, the reward catalogue, vouchers,
and the programme's part of the member page (tier, vouchers, redeem, refunds).

Thin by design: lists and forms here; every write goes through ``rewards.services`` or
``members.services``, every figure on the member page comes from a selector.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.contrib.humanize.templatetags.humanize import intcomma
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, F, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce, Greatest
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format, localize, number_format
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from members import admin as members_admin
from members.models import (
    Member,
    PointsEntry,
    ProgrammeSettings,
    Purchase,
    TierBasis,
    TierWindow,
)
from members.paginators import LargeTablePaginator
from members.selectors import (
    member_next_expiry,
    member_points_summary,
    programme_settings_get,
)
from members.services import PointsRefused, purchase_refund
from members.templatetags.points import points_details, points_signed, points_step_text
from rewards.engine import BasketLine, basket_points_explain, earning_rules_load
from rewards.evaluation import TierImpact, TierSpec, tier_specs_current, tiers_impact_preview
from rewards.forms import (
    EarningRuleForm,
    PurchaseRefundForm,
    RewardAdminForm,
    RewardRedeemForm,
    SimulateForm,
    TierSetForm,
    VoucherCancelForm,
)
from rewards.models import (
    EarningRule,
    MemberTier,
    Referral,
    Reward,
    StampRule,
    Tier,
    TierChange,
    Voucher,
)
from rewards.selectors import (
    member_tier_history,
    member_tier_progress,
    member_vouchers,
    members_facing_downgrade,
    tier_entry_get,
)
from rewards.services import (
    member_enrol,
    reward_redeem,
    tier_set_manual,
    voucher_cancel,
    voucher_fulfilment_set,
    voucher_use,
)

TIER_HISTORY_SHOWN = 10
VOUCHERS_SHOWN = 20
# Stands for a tier being added in an impact preview; real ids are positive.
PROPOSED_TIER_ID = -1


# ------------------------------------------------------------------ formatting


def plain_number(value) -> str:
    """Return a decimal in the active locale without needless zeros: "4,200", "1.5"."""
    value = Decimal(value)
    if value == value.to_integral_value():
        places = 0
    else:
        places = max(0, -value.normalize().as_tuple().exponent)
    return number_format(value, decimal_pos=places, use_l10n=True, force_grouping=True)


def money(value) -> str:
    """Return an amount in the programme currency, whole when it is, e.g. "4,200 RUB"."""
    value = Decimal(value)
    places = 0 if value == value.to_integral_value() else 2
    number = number_format(value, decimal_pos=places, use_l10n=True, force_grouping=True)
    return f"{number} {settings.LOYALTY_CURRENCY}"


def points_words(points) -> str:
    """Return "1 point" / "4,200 points" in the active language."""
    points = int(points)
    return ngettext("%(points)s point", "%(points)s points", abs(points)) % {
        "points": intcomma(points)
    }


def qualifying_words(value, basis: str) -> str:
    """Return a tier qualification amount as money spent or points earned."""
    return points_words(value) if basis == TierBasis.POINTS else money(value)


def short_date(value: date | datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = timezone.localtime(value)
    return date_format(value, "SHORT_DATE_FORMAT")


def titled_filter(title):
    """Return a choices filter with its own title (model fields share the label "kind")."""

    class TitledChoicesFilter(admin.ChoicesFieldListFilter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.title = title

    return TitledChoicesFilter


def swatch(colour: str, label) -> str:
    return format_html(
        '<span class="tier-swatch" style="background:{}"></span>{}', colour, label
    )


class PlainTitleMixin:
    """List pages titled with the plural name ("Vouchers"), not "Select voucher to change"."""

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(
            request, {"title": capfirst(self.opts.verbose_name_plural), **(extra_context or {})}
        )


# ------------------------------------------------------------------ impact preview


class ImpactPreviewMixin:
    """Show how many members a change of the tiers would move before it is saved.

    A valid POST of the form that adds an object, or changes one of ``impact_fields``,
    renders a confirmation page instead of saving. Its Confirm button re-posts the same
    data with ``_confirm`` (then the normal save runs); Back re-posts it with ``_back``
    to show the form again as it was filled in. The admin using it defines
    ``impact_compute(form, obj) -> TierImpact``: the impact of the change ``form`` holds
    (``obj`` None for an addition).
    """

    impact_fields: tuple[str, ...] = ()
    impact_template = "admin/rewards/impact_preview.html"

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if (
            request.method == "POST"
            and "_confirm" not in request.POST
            and "_saveasnew" not in request.POST
        ):
            response = self._impact_preview(request, object_id, form_url)
            if response is not None:
                return response
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _impact_preview(self, request, object_id, form_url):
        """Return the preview (or the form again, for Back), or None to save as usual."""
        obj = None
        if object_id is None:
            if not self.has_add_permission(request):
                return None  # the normal view refuses
        else:
            obj = self.get_object(request, unquote(object_id))
            if obj is None or not self.has_change_permission(request, obj):
                return None
        fieldsets = self.get_fieldsets(request, obj)
        form_class = self.get_form(
            request, obj, change=obj is not None, fields=flatten_fieldsets(fieldsets)
        )
        form = form_class(request.POST, request.FILES, instance=obj)
        if "_back" in request.POST:
            return self._impact_form_again(request, object_id, obj, form, fieldsets, form_url)
        before = {name: form[name].initial for name in self.impact_fields if name in form.fields}
        if not form.is_valid():
            return None  # the normal view shows the errors
        changed = [name for name in self.impact_fields if name in form.changed_data]
        if obj is not None and not changed:
            return None
        # The preview counts members below their tier under the proposal, also those
        # below it already; the same count for the tiers as they are shows the difference.
        baseline = tiers_impact_preview(proposed=tier_specs_current())
        impact = self.impact_compute(form, obj)
        changes = [
            (form.fields[name].label, _shown(form, name, before.get(name)),
             _shown(form, name, form.cleaned_data.get(name)))
            for name in (changed if obj is not None else self.impact_fields)
            if name in form.fields
        ]
        return TemplateResponse(request, self.impact_template, {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Check the impact before saving"),
            "original": obj,
            "adding": obj is None,
            "impact": impact,
            "baseline": baseline,
            "up_text": ngettext(
                "%(count)s member would move up.", "%(count)s members would move up.",
                impact.up,
            ) % {"count": intcomma(impact.up)},
            "down_text": ngettext(
                "%(count)s member would move down (after their grace period).",
                "%(count)s members would move down (after their grace period).",
                impact.down,
            ) % {"count": intcomma(impact.down)},
            "changes": changes,
            "post_items": [
                (key, value)
                for key, values in request.POST.lists()
                if key not in ("csrfmiddlewaretoken", "_confirm", "_back")
                for value in values
            ],
            "media": self.media,
        })

    def _impact_form_again(self, request, object_id, obj, form, fieldsets, form_url):
        """Return the change form bound to the posted data, saving nothing."""
        add = obj is None
        admin_form = helpers.AdminForm(
            form, list(fieldsets), self.get_prepopulated_fields(request, obj),
            self.get_readonly_fields(request, obj), model_admin=self,
        )
        context = {
            **self.admin_site.each_context(request),
            "title": (gettext("Add %s") if add else gettext("Change %s"))
            % self.opts.verbose_name,
            "subtitle": str(obj) if obj else None,
            "adminform": admin_form,
            "object_id": object_id,
            "original": obj,
            "is_popup": False,
            "to_field": None,
            "media": self.media + admin_form.media,
            "inline_admin_formsets": [],
            "errors": helpers.AdminErrorList(form, []),
            "preserved_filters": self.get_preserved_filters(request),
        }
        return self.render_change_form(
            request, context, add=add, change=not add, obj=obj, form_url=form_url
        )


def _shown(form, name: str, value) -> str:
    """Return a form value as the person reads it: a choice's label, yes/no, a number."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    choices = dict(getattr(form.fields[name], "choices", None) or ())
    if value in choices:
        return str(choices[value])
    if isinstance(value, Decimal | int):
        return plain_number(value)
    return str(localize(value, use_l10n=True))


# ------------------------------------------------------------------ tiers


@admin.register(Tier)
class TierAdmin(PlainTitleMixin, ImpactPreviewMixin, admin.ModelAdmin):
    """Tiers and their benefits; a change of who qualifies is previewed before saving."""

    list_display = (
        "rank", "name_column", "threshold_column", "multiplier_column", "discount_column",
        "free_delivery", "grace_days", "member_count_column",
    )
    list_display_links = ("rank", "name_column")
    ordering = ("rank",)
    search_fields = ("name",)
    fieldsets = (
        (None, {"fields": ("name", "rank", "colour")}),
        (_("Qualification"), {"fields": ("threshold", "invitation_only", "grace_days")}),
        (_("Benefits"), {
            "fields": ("earn_multiplier", "discount_percent", "free_delivery", "perks"),
        }),
    )
    impact_fields = ("threshold", "invitation_only", "rank")
    change_list_template = "admin/rewards/tier/change_list.html"

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "colour":
            field.widget.input_type = "color"
            field.widget.attrs.update({"class": "tier-colour-input"})
        return field

    def get_queryset(self, request):
        members = (
            MemberTier.objects.filter(tier=OuterRef("pk"))
            .order_by()
            .values("tier")
            .annotate(count=Count("pk"))
            .values("count")
        )
        return super().get_queryset(request).annotate(
            member_count=Coalesce(Subquery(members), 0)
        )

    @admin.display(description=_("name"), ordering="name")
    def name_column(self, tier: Tier) -> str:
        return swatch(tier.colour, tier.name)

    @admin.display(description=_("qualifies from"), ordering="threshold")
    def threshold_column(self, tier: Tier) -> str:
        if tier.invitation_only:
            return format_html('<span class="quiet">{}</span>', gettext("by invitation"))
        return plain_number(tier.threshold)

    @admin.display(description=_("earn multiplier"), ordering="earn_multiplier")
    def multiplier_column(self, tier: Tier) -> str:
        return f"×{plain_number(tier.earn_multiplier)}"

    @admin.display(description=_("discount %"), ordering="discount_percent")
    def discount_column(self, tier: Tier) -> str:
        return f"{plain_number(tier.discount_percent)}%" if tier.discount_percent else "—"

    @admin.display(description=_("members"), ordering="member_count")
    def member_count_column(self, tier: Tier) -> str:
        url = reverse("admin:rewards_membertier_changelist") + f"?tier__id__exact={tier.pk}"
        return format_html('<a href="{}">{}</a>', url, intcomma(tier.member_count))

    def changelist_view(self, request, extra_context=None):
        settings_row = programme_settings_get()
        return super().changelist_view(request, {
            "programme_settings": settings_row,
            "qualification_words": _qualification_words(settings_row),
            **(extra_context or {}),
        })

    def impact_compute(self, form, obj) -> TierImpact:
        proposed = form.instance
        specs = [spec for spec in tier_specs_current() if obj is None or spec.id != obj.pk]
        specs.append(TierSpec(
            id=obj.pk if obj is not None else PROPOSED_TIER_ID,
            rank=proposed.rank,
            threshold=Decimal(proposed.threshold),
            invitation_only=proposed.invitation_only,
            grace_days=proposed.grace_days,
        ))
        return tiers_impact_preview(proposed=sorted(specs, key=lambda spec: spec.rank))


def _qualification_words(settings_row: ProgrammeSettings) -> str:
    """Return how tiers qualify, e.g. "money spent over a rolling 12 months"."""
    basis = settings_row.get_tier_basis_display().lower()
    if settings_row.tier_window == TierWindow.ROLLING:
        window = ngettext(
            "over a rolling %(months)s month", "over a rolling %(months)s months",
            settings_row.tier_window_months,
        ) % {"months": settings_row.tier_window_months}
    elif settings_row.tier_window == TierWindow.CALENDAR_YEAR:
        window = gettext("in the calendar year")
    else:
        window = gettext("since enrolment")
    return f"{basis} {window}"


# ------------------------------------------------------------------ earning rules


@admin.register(EarningRule)
class EarningRuleAdmin(PlainTitleMixin, admin.ModelAdmin):
    """How purchases earn points; the Simulate page shows what a basket would get."""

    form = EarningRuleForm
    list_display = (
        "name", "kind_column", "rate_column", "applies_to_column", "min_purchase",
        "validity_column", "is_active",
    )
    list_filter = (("kind", titled_filter(_("rule type"))), "is_active", "category")
    list_select_related = ("category",)
    search_fields = ("name", "sku")
    ordering = ("kind", "name")
    fieldsets = (
        (None, {"fields": ("name", "kind", "is_active")}),
        (_("Base rate"), {"fields": ("points_per_unit", "rounding", "min_purchase")}),
        (_("Multiplier or exclusion"), {"fields": ("multiplier", "category", "sku")}),
        (_("Validity"), {"fields": ("valid_from", "valid_until")}),
    )
    change_list_template = "admin/rewards/earningrule/change_list.html"

    @admin.display(description=_("rule type"), ordering="kind")
    def kind_column(self, rule: EarningRule) -> str:
        return rule.get_kind_display()

    @admin.display(description=_("rate"))
    def rate_column(self, rule: EarningRule) -> str:
        if rule.kind == EarningRule.Kind.BASE and rule.points_per_unit is not None:
            return format_html(
                '{} <span class="quiet">{}</span>',
                localize(rule.points_per_unit.normalize()), rule.get_rounding_display().lower(),
            )
        if rule.multiplier is not None and rule.kind != EarningRule.Kind.EXCLUDE:
            return f"×{localize(rule.multiplier.normalize())}"
        return "—"

    @admin.display(description=_("applies to"))
    def applies_to_column(self, rule: EarningRule) -> str:
        if rule.kind == EarningRule.Kind.SKU:
            return format_html('<span class="mono">{}</span>', rule.sku)
        if rule.category_id is not None:
            return rule.category.name
        return gettext("every purchase")

    @admin.display(description=_("valid"))
    def validity_column(self, rule: EarningRule) -> str:
        if rule.valid_from is None and rule.valid_until is None:
            return gettext("always")
        return f"{short_date(rule.valid_from) or '…'} – {short_date(rule.valid_until) or '…'}"

    def get_urls(self):
        return [
            path("simulate/", self.admin_site.admin_view(self.simulate_view),
                 name="rewards_earningrule_simulate"),
        ] + super().get_urls()

    def simulate_view(self, request: HttpRequest):
        """Show the points a basket would earn for a member or a tier, step by step."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        today = timezone.localdate()
        form = SimulateForm(request.GET if "simulate" in request.GET else None)
        result = None
        if form.is_bound and form.is_valid():
            result = _simulate(form.cleaned_data, today=today)
        return TemplateResponse(request, "admin/rewards/earningrule/simulate.html", {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Simulate points for a basket"),
            "form": form,
            "result": result,
            "today": today,
            "currency": settings.LOYALTY_CURRENCY,
        })


def _simulate(data: dict, *, today: date) -> dict:
    """Return what the earning engine gives the basket in ``data`` (a SimulateForm's)."""
    member = data.get("member")
    tier = data.get("tier")
    if member is not None:
        entry = tier_entry_get(member_id=member.pk)
        tier = entry.tier if entry else None
    on = data.get("on") or today
    lines = [
        BasketLine(
            amount=line["amount"],
            category_id=line["category"].pk if line["category"] else None,
            sku=line["sku"],
            category_name=line["category"].name if line["category"] else "",
        )
        for line in data["lines"]
    ]
    total = data.get("total")
    if total is None:
        total = sum((line.amount for line in lines), Decimal(0))
    explanation = basket_points_explain(
        rules=earning_rules_load(on=on), total=total, lines=lines, tier=tier
    )
    step_labels = {
        "base": gettext("Base rate"), "tier": gettext("Tier"),
        "multiplier": gettext("Multiplier"), "excluded": gettext("Excluded"),
        "campaign": gettext("Campaign"), "min_purchase": gettext("Minimum purchase"),
        "rounding": gettext("Rounding"),
    }
    return {
        "member": member,
        "tier": tier,
        "tier_multiplier": localize(tier.earn_multiplier.normalize()) if tier else "",
        "on": on,
        "total": total,
        "lines": lines,
        "points": explanation.points,
        "summary": points_details(explanation.steps),
        "steps": [
            {
                "label": step_labels.get(step.get("step"), step.get("step")),
                "rule": step.get("rule") or step.get("tier") or "",
                "text": points_step_text(step),
                "points": _step_points(step),
                "kind": step.get("step"),
            }
            for step in explanation.steps
        ],
    }


def _step_points(step: dict) -> str:
    """Return a step's points localised: whole for the rounding, else to the hundredth."""
    points = step.get("points")
    if points is None:
        return ""
    places = 0 if step.get("step") == "rounding" else 2
    return number_format(Decimal(str(points)), decimal_pos=places, use_l10n=True,
                         force_grouping=True)


@admin.register(StampRule)
class StampRuleAdmin(PlainTitleMixin, admin.ModelAdmin):
    """Stamp cards: every Nth qualifying purchase earns a voucher."""

    list_display = ("name", "every", "category", "reward", "starts_on", "is_active")
    list_filter = ("is_active", "category")
    list_select_related = ("category", "reward")
    search_fields = ("name",)
    ordering = ("name",)


# ------------------------------------------------------------------ reward catalogue


@admin.register(Reward)
class RewardAdmin(PlainTitleMixin, admin.ModelAdmin):
    """The reward catalogue: what members get for points, for whom and how many."""

    list_display = (
        "name_column", "cost_column", "value_column", "stock_column", "window_column",
        "restrictions_column", "is_active",
    )
    list_display_links = ("name_column",)
    form = RewardAdminForm
    list_filter = ("is_active", ("kind", titled_filter(_("reward type"))), "min_tier")
    list_select_related = ("min_tier",)
    search_fields = ("name", "partner")
    ordering = ("points_cost", "name")
    fieldsets = (
        (None, {"fields": ("name", "kind", "description", "is_active")}),
        (_("Cost and value"), {"fields": ("points_cost", "value", "partner")}),
        (_("Who may redeem it, when, how many"), {
            "fields": (("available_from", "available_until"), "min_tier",
                       "per_member_limit", ("stock", "stock_shown")),
        }),
        (_("Voucher"), {"fields": ("voucher_valid_days",)}),
    )

    @admin.display(description=_("name"), ordering="name")
    def name_column(self, reward: Reward) -> str:
        return format_html('{}<div class="quiet">{}</div>', reward.name, reward.get_kind_display())

    @admin.display(description=_("points cost"), ordering="points_cost")
    def cost_column(self, reward: Reward) -> str:
        return intcomma(reward.points_cost)

    @admin.display(description=_("value"), ordering="value")
    def value_column(self, reward: Reward) -> str:
        if reward.kind == Reward.Kind.PERCENT:
            return f"{plain_number(reward.value)}%"
        if reward.kind == Reward.Kind.FIXED:
            return money(reward.value)
        if reward.kind == Reward.Kind.PARTNER:
            return format_html('{}<div class="quiet">{}</div>', plain_number(reward.value),
                               reward.partner)
        return "—"

    @admin.display(description=_("stock"), ordering="stock")
    def stock_column(self, reward: Reward) -> str:
        if reward.stock is None:
            return format_html('<span class="quiet">{}</span>', gettext("unlimited"))
        css = "num negative" if reward.stock == 0 else "num"
        return format_html('<span class="{}">{}</span>', css, intcomma(reward.stock))

    @admin.display(description=_("available"))
    def window_column(self, reward: Reward) -> str:
        if reward.available_from is None and reward.available_until is None:
            window = gettext("always")
        else:
            window = (
                f"{short_date(reward.available_from) or '…'} – "
                f"{short_date(reward.available_until) or '…'}"
            )
        valid = ngettext(
            "voucher valid %(days)s day", "voucher valid %(days)s days", reward.voucher_valid_days
        ) % {"days": reward.voucher_valid_days}
        return format_html('{}<div class="quiet">{}</div>', window, valid)

    @admin.display(description=_("for whom"))
    def restrictions_column(self, reward: Reward) -> str:
        parts = []
        if reward.min_tier is not None:
            parts.append(gettext("%(tier)s and above") % {"tier": reward.min_tier.name})
        if reward.per_member_limit is not None:
            parts.append(ngettext(
                "%(limit)s per member", "%(limit)s per member", reward.per_member_limit
            ) % {"limit": reward.per_member_limit})
        return " · ".join(parts) or gettext("everyone")

    def save_model(self, request, obj, form, change):
        if not change:
            obj.save()
            return
        # Redemptions lower the stock in SQL while the form is open: write only the fields
        # changed, and a changed stock as the difference to what the form showed, so a
        # save never hands back units that were redeemed meanwhile.
        fields = [name for name in form.changed_data if name not in ("stock", "stock_shown")]
        shown, typed = form.cleaned_data.get("stock_shown"), form.cleaned_data.get("stock")
        if typed != shown:
            if typed is not None and shown is not None:
                Reward.objects.filter(pk=obj.pk).update(
                    stock=Greatest(F("stock") + (typed - shown), 0)
                )
            else:  # between unlimited and a number: the number typed is the stock
                fields.append("stock")
        if fields:
            obj.save(update_fields=fields)
        obj.refresh_from_db(fields=["stock"])


# ------------------------------------------------------------------ vouchers


@admin.register(Voucher)
class VoucherAdmin(PlainTitleMixin, members_admin.ReadOnlyAdmin):
    """Issued vouchers: Support marks them used or shipped and cancels them with a reason.

    Vouchers come only from redemption (the member page, imports) and stamp cards;
    nobody adds, edits or deletes them here.
    """

    list_display = (
        "code_column", "member_column", "reward", "status_column", "fulfilment_column",
        "issued_column", "expires_column",
    )
    list_filter = ("status", "reward", "source", "fulfilment", "issued_at")
    list_select_related = ("member", "reward")
    search_fields = ("code",)  # the real search is get_search_results
    search_help_text = _("A voucher code in any case, or the member's card number.")
    fieldsets = (
        (None, {"fields": ("code", "member", "reward", "status", "source")}),
        (_("Dates"), {"fields": ("issued_at", "expires_at", "used_at", "cancelled_at",
                                 "cancel_reason")}),
        (_("Gift delivery"), {"fields": ("fulfilment",)}),
        (_("Origin"), {"fields": ("redemption_entry", "issued_by", "purchase")}),
    )
    actions = ("mark_used", "mark_shipped", "mark_delivered")
    paginator = LargeTablePaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    ordering = ("-id",)
    change_form_template = "admin/rewards/voucher/change_form.html"

    @admin.display(description=_("code"), ordering="code")
    def code_column(self, voucher: Voucher) -> str:
        return format_html('<span class="mono nowrap">{}</span>', voucher.code)

    @admin.display(description=_("status"), ordering="status")
    def status_column(self, voucher: Voucher) -> str:
        badge = format_html(
            '<span class="badge badge-voucher-{}">{}</span>', voucher.status,
            voucher.get_status_display(),
        )
        if voucher.used_at is not None:
            return format_html('{}<div class="quiet">{}</div>', badge, short_date(voucher.used_at))
        return badge

    @admin.display(description=_("member"), ordering="member_id")
    def member_column(self, voucher: Voucher) -> str:
        return format_html(
            '<a href="{}">{}</a><div class="quiet mono">{}</div>',
            reverse("admin:members_member_change", args=[voucher.member_id]),
            voucher.member.full_name, voucher.member.card_number,
        )

    @admin.display(description=_("fulfilment"), ordering="fulfilment")
    def fulfilment_column(self, voucher: Voucher) -> str:
        return voucher.get_fulfilment_display() if voucher.fulfilment else "—"

    @admin.display(description=_("issued"), ordering="issued_at")
    def issued_column(self, voucher: Voucher) -> str:
        return short_date(voucher.issued_at)

    @admin.display(description=_("expires"), ordering="expires_at")
    def expires_column(self, voucher: Voucher) -> str:
        return short_date(voucher.expires_at)


    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(code=_voucher_code(term)) | queryset.filter(
            member__card_number=term
        ), False

    # ---------------------------------------------------------------- permissions
    def has_change_voucher_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("rewards.change_voucher")

    # ---------------------------------------------------------------- actions
    @admin.action(description=_("Mark used"), permissions=["change_voucher"])
    def mark_used(self, request, queryset):
        done, refusals = 0, []
        for voucher_id, code, status in queryset.values_list("id", "code", "status"):
            try:
                voucher_use(voucher_id=voucher_id, actor=request.user)
            except PointsRefused as refusal:
                refusals.append(f"{code}: {refusal}")
            else:
                done += status != Voucher.Status.USED
        if done:
            messages.success(request, ngettext(
                "%(count)s voucher marked used.", "%(count)s vouchers marked used.", done,
            ) % {"count": done})
        _refusals_show(request, refusals)

    @admin.action(description=_("Mark shipped"), permissions=["change_voucher"])
    def mark_shipped(self, request, queryset):
        self._fulfilment_set(request, queryset, Voucher.Fulfilment.SHIPPED)

    @admin.action(description=_("Mark delivered"), permissions=["change_voucher"])
    def mark_delivered(self, request, queryset):
        self._fulfilment_set(request, queryset, Voucher.Fulfilment.DELIVERED)

    def _fulfilment_set(self, request, queryset, fulfilment: str) -> None:
        done, skipped = 0, 0
        for voucher_id in queryset.values_list("id", flat=True):
            try:
                voucher_fulfilment_set(
                    voucher_id=voucher_id, fulfilment=fulfilment, actor=request.user
                )
            except PointsRefused:
                skipped += 1
            else:
                done += 1
        label = Voucher.Fulfilment(fulfilment).label.lower()
        if done:
            messages.success(request, ngettext(
                "%(count)s gift marked %(status)s.", "%(count)s gifts marked %(status)s.", done,
            ) % {"count": done, "status": label})
        if skipped:
            messages.warning(request, ngettext(
                "%(count)s voucher is not a physical gift still to deliver and was left as it "
                "was.",
                "%(count)s vouchers are not physical gifts still to deliver and were left as "
                "they were.",
                skipped,
            ) % {"count": skipped})

    # ---------------------------------------------------------------- pages
    def change_view(self, request, object_id, form_url="", extra_context=None):
        voucher = self.get_object(request, unquote(object_id))
        extra = {
            "can_cancel_voucher": voucher is not None
            and voucher.status == Voucher.Status.ISSUED
            and self.has_change_voucher_permission(request),
        }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def get_urls(self):
        return [
            path("<int:voucher_id>/cancel/", self.admin_site.admin_view(self.cancel_view),
                 name="rewards_voucher_cancel"),
        ] + super().get_urls()

    def cancel_view(self, request: HttpRequest, voucher_id: int):
        """Cancel an issued voucher with a reason; its points come back by a reversal."""
        if not self.has_change_voucher_permission(request):
            raise PermissionDenied
        voucher = get_object_or_404(
            Voucher.objects.select_related("member", "reward", "redemption_entry"),
            pk=voucher_id,
        )
        member = voucher.member
        form = VoucherCancelForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                voucher_cancel(
                    voucher_id=voucher.pk, reason=form.cleaned_data["reason"],
                    actor=request.user,
                )
            except PointsRefused as refusal:
                form.add_error(None, str(refusal))
            else:
                if voucher.redemption_entry is not None:
                    member.refresh_from_db(fields=["points_balance"])
                    messages.success(request, gettext(
                        "Voucher %(code)s cancelled: %(points)s points returned. "
                        "New balance: %(balance)s."
                    ) % {"code": voucher.code,
                         "points": points_signed(-voucher.redemption_entry.amount),
                         "balance": intcomma(member.points_balance)})
                else:
                    messages.success(request, gettext("Voucher %(code)s cancelled.")
                                     % {"code": voucher.code})
                return HttpResponseRedirect(
                    reverse("admin:members_member_change", args=[member.pk])
                )
        return TemplateResponse(request, "admin/rewards/voucher/cancel.html", {
            **self.admin_site.each_context(request),
            "opts": Member._meta,
            "title": gettext("Cancel voucher %(code)s") % {"code": voucher.code},
            "member": member,
            "member_url": reverse("admin:members_member_change", args=[member.pk]),
            "voucher": voucher,
            "form": form,
        })


def _voucher_code(term: str) -> str:
    """Return a typed voucher code as stored: upper case, dashes every four characters."""
    raw = "".join(ch for ch in term.upper() if ch.isalnum())
    if len(raw) == 12:
        return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"
    return term.strip().upper()


def _refusals_show(request, refusals: list[str]) -> None:
    if refusals:
        shown = "; ".join(refusals[:5])
        more = len(refusals) - 5
        if more > 0:
            shown += " " + gettext("(and %(count)s more)") % {"count": more}
        messages.warning(request, shown)


# ------------------------------------------------------------------ read-only histories


@admin.register(Referral)
class ReferralAdmin(PlainTitleMixin, members_admin.ReadOnlyAdmin):
    list_display = ("created_at", "referrer", "referred", "status", "rewarded_at")
    list_filter = ("status", "created_at")
    list_select_related = ("referrer", "referred")
    search_fields = ("referrer__card_number", "referred__card_number")
    search_help_text = _("Card number of the referrer or of the new member.")
    ordering = ("-id",)
    paginator = LargeTablePaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(referrer__card_number=term) | queryset.filter(
            referred__card_number=term
        ), False


@admin.register(TierChange)
class TierChangeAdmin(PlainTitleMixin, members_admin.ReadOnlyAdmin):
    """Every change of a member's tier and why."""

    list_display = ("created_at", "member", "from_tier", "to_tier", "reason", "note", "actor")
    list_filter = ("reason", "to_tier", "created_at")
    list_select_related = ("member", "from_tier", "to_tier", "actor")
    search_fields = ("member__card_number",)
    search_help_text = _("The member's card number.")
    ordering = ("-id",)
    paginator = LargeTablePaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        return (queryset.filter(member__card_number=term) if term else queryset), False


class FacingDowngradeFilter(admin.SimpleListFilter):
    """Members below their tier's threshold: the next evaluations will move them down."""

    title = _("downgrade risk")
    parameter_name = "downgrade"

    def lookups(self, request, model_admin):
        return (("facing", _("Facing downgrade")),)

    def queryset(self, request, queryset):
        if self.value() == "facing":
            return queryset.filter(pk__in=members_facing_downgrade().values("pk"))
        return queryset


@admin.register(MemberTier)
class MemberTierAdmin(PlainTitleMixin, members_admin.ReadOnlyAdmin):
    """Members' current tiers; filtered on "facing downgrade" it lists who will move down."""

    list_display = (
        "member_column", "tier_column", "source", "since_column", "manual_until",
        "below_since", "downgrade_column",
    )
    list_display_links = None
    list_filter = (FacingDowngradeFilter, "tier", "source")
    list_select_related = ("member", "tier")
    search_fields = ("member__card_number",)
    search_help_text = _("The member's card number.")
    ordering = ("-pk",)
    paginator = LargeTablePaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    change_list_template = "admin/rewards/membertier/change_list.html"

    @admin.display(description=_("member"), ordering="pk")
    def member_column(self, status: MemberTier) -> str:
        return format_html(
            '<a href="{}">{}</a> <span class="quiet mono">{}</span>',
            reverse("admin:members_member_change", args=[status.member_id]),
            status.member.full_name, status.member.card_number,
        )

    @admin.display(description=_("tier"), ordering="tier__rank")
    def tier_column(self, status: MemberTier) -> str:
        return format_html('<span class="nowrap">{}</span>',
                           swatch(status.tier.colour, status.tier.name))

    @admin.display(description=_("since"), ordering="since")
    def since_column(self, status: MemberTier) -> str:
        return short_date(status.since)

    @admin.display(description=_("moves down on"))
    def downgrade_column(self, status: MemberTier) -> str:
        if status.below_since is None or status.source != MemberTier.Source.QUALIFIED:
            return "—"
        return short_date(status.below_since + timedelta(days=status.tier.grace_days))

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        return (queryset.filter(member__card_number=term) if term else queryset), False


# ------------------------------------------------------------------ programme settings


admin.site.unregister(ProgrammeSettings)


@admin.register(ProgrammeSettings)
class ProgrammeSettingsPreviewAdmin(ImpactPreviewMixin, members_admin.ProgrammeSettingsAdmin):
    """The settings page; a change of how tiers qualify is previewed before saving."""

    impact_fields = ("tier_basis", "tier_window", "tier_window_months", "tier_downgrade_policy")

    def impact_compute(self, form, obj) -> TierImpact:
        # The preview reads the settings row: try the new values and roll them back.
        changed = {name: form.cleaned_data[name] for name in self.impact_fields
                   if name in form.changed_data}
        with transaction.atomic():
            ProgrammeSettings.objects.filter(pk=obj.pk).update(**changed)
            impact = tiers_impact_preview(proposed=tier_specs_current())
            transaction.set_rollback(True)
        return impact


# ------------------------------------------------------------------ the member page


admin.site.unregister(Member)


@admin.register(Member)
class ProgrammeMemberAdmin(members_admin.MemberAdmin):
    """The member page with the programme: tier, vouchers, redeem, set a tier, refunds.

    New members are enrolled (entry tier, welcome bonus, referral) instead of only saved.
    """

    change_form_template = "admin/rewards/member_change_form.html"

    # ---------------------------------------------------------------- saving
    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # The referral is registered by the service, which sets ``referred_by`` only when
        # it accepts it; a refused one (same phone, monthly limit) is shown, not saved.
        referrer_id = obj.referred_by_id
        obj.referred_by = None
        member_enrol(member=obj, actor=request.user, referrer_id=referrer_id)
        if obj.referral_refusal is not None:
            messages.warning(request, gettext(
                "The member was enrolled, but the referral was refused: %(reason)s"
            ) % {"reason": obj.referral_refusal})
        elif referrer_id is not None:
            obj.referred_by_id = referrer_id

    # ---------------------------------------------------------------- member page
    def _member_story_context(self, request: HttpRequest, member: Member) -> dict:
        context = super()._member_story_context(request, member)
        summary = member_points_summary(member=member)
        expiry = member_next_expiry(member_id=member.pk)
        progress = member_tier_progress(member_id=member.pk)
        context.update(
            points_summary=summary,
            next_expiry=expiry,
            expiry_text=ngettext(
                "%(points)s point expires on %(date)s", "%(points)s points expire on %(date)s",
                expiry.points,
            ) % {"points": intcomma(expiry.points), "date": short_date(expiry.on)}
            if expiry.on else "",
            tier_progress=progress,
            tier_card=_tier_card(progress, programme_settings_get()),
            tier_history=list(member_tier_history(member_id=member.pk)[:TIER_HISTORY_SHOWN]),
            vouchers=list(member_vouchers(member_id=member.pk)[:VOUCHERS_SHOWN]),
            vouchers_url=reverse("admin:rewards_voucher_changelist")
            + f"?q={member.card_number}",
            tier_history_url=reverse("admin:rewards_tierchange_changelist")
            + f"?q={member.card_number}",
            can_redeem=request.user.has_perm("rewards.add_voucher")
            and member.status == Member.Status.ACTIVE,
            can_set_tier=request.user.has_perm("rewards.change_membertier"),
            can_refund=self.has_adjust_points_permission(request),
            can_cancel_voucher=request.user.has_perm("rewards.change_voucher"),
        )
        return context

    # ---------------------------------------------------------------- extra pages
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:member_id>/redeem/", wrap(self.redeem_view),
                 name="members_member_redeem"),
            path("<int:member_id>/tier/", wrap(self.tier_view), name="members_member_tier"),
            path("<int:member_id>/refund/<int:purchase_id>/", wrap(self.refund_view),
                 name="members_member_refund"),
        ] + super().get_urls()

    def redeem_view(self, request: HttpRequest, member_id: int):
        """Redeem a reward for a member (Support): points are debited, a voucher issued."""
        if not request.user.has_perm("rewards.add_voucher"):
            raise PermissionDenied
        member = self._member_or_404(request, member_id)
        form = RewardRedeemForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            reward = form.cleaned_data["reward"]
            try:
                voucher = reward_redeem(
                    member_id=member.pk, reward_id=reward.pk, actor=request.user,
                    idempotency_key=f"admin-redeem:{form.cleaned_data['idempotency_key']}",
                )
            except PointsRefused as refusal:
                form.add_error(None, str(refusal))
            else:
                member.refresh_from_db(fields=["points_balance"])
                messages.success(request, gettext(
                    "Voucher %(code)s issued for “%(reward)s”. New balance: %(balance)s."
                ) % {"code": voucher.code, "reward": voucher.reward.name,
                     "balance": intcomma(member.points_balance)})
                return HttpResponseRedirect(
                    reverse("admin:members_member_change", args=[member.pk])
                )
        summary = member_points_summary(member=member)
        entry = tier_entry_get(member_id=member.pk)
        chosen = form["reward"].value()
        return self._page(
            request, "admin/rewards/member/redeem.html", gettext("Redeem a reward"), member,
            form=form,
            points_summary=summary,
            member_tier=entry.tier if entry else None,
            offers=_reward_offers(member=member, available=summary.available,
                                  tier=entry.tier if entry else None),
            chosen=str(chosen) if chosen else "",
        )

    def tier_view(self, request: HttpRequest, member_id: int):
        """Set a member's tier by hand (a manager), with a reason and an end date."""
        if not request.user.has_perm("rewards.change_membertier"):
            raise PermissionDenied
        member = self._member_or_404(request, member_id)
        entry = tier_entry_get(member_id=member.pk)
        form = TierSetForm(request.POST or None,
                           initial={"tier": entry.tier_id if entry else None})
        if request.method == "POST" and form.is_valid():
            until = form.cleaned_data["until"]
            try:
                tier_set_manual(
                    member_id=member.pk, tier_id=form.cleaned_data["tier"].pk,
                    reason=form.cleaned_data["reason"], until=until, actor=request.user,
                )
            except PointsRefused as refusal:
                form.add_error(None, str(refusal))
            else:
                tier = form.cleaned_data["tier"].name
                if until:
                    text = gettext("The tier is now %(tier)s, set by hand until %(date)s.") % {
                        "tier": tier, "date": short_date(until)}
                else:
                    text = gettext("The tier is now %(tier)s, set by hand.") % {"tier": tier}
                messages.success(request, text)
                return HttpResponseRedirect(
                    reverse("admin:members_member_change", args=[member.pk])
                )
        return self._page(
            request, "admin/rewards/member/set_tier.html", gettext("Set tier"), member,
            form=form, member_tier=entry,
        )

    def refund_view(self, request: HttpRequest, member_id: int, purchase_id: int):
        """Record a return of a member's receipt; its points are reversed in proportion."""
        if not self.has_adjust_points_permission(request):
            raise PermissionDenied
        member = self._member_or_404(request, member_id)
        purchase = get_object_or_404(
            Purchase.objects.select_related("store"), pk=purchase_id, member_id=member.pk
        )
        form = PurchaseRefundForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            amount = form.cleaned_data["amount"]
            try:
                refund = purchase_refund(
                    purchase_id=purchase.pk, amount=amount,
                    refund_key=f"admin-refund:{form.cleaned_data['idempotency_key']}",
                    reason=form.cleaned_data["reason"], actor=request.user,
                )
            except PointsRefused as refusal:
                form.add_error(None, str(refusal))
            else:
                if refund.entry_id is not None:
                    member.refresh_from_db(fields=["points_balance"])
                    text = gettext(
                        "Refund of %(amount)s recorded: %(points)s points. "
                        "New balance: %(balance)s."
                    ) % {"amount": money(refund.amount),
                         "points": points_signed(refund.entry.amount),
                         "balance": intcomma(member.points_balance)}
                else:
                    text = gettext(
                        "Refund of %(amount)s recorded; the receipt had no points to return."
                    ) % {"amount": money(refund.amount)}
                messages.success(request, text)
                return HttpResponseRedirect(
                    reverse("admin:members_member_change", args=[member.pk]) + "#purchases"
                )
        points = PointsEntry.objects.filter(purchase_id=purchase.pk).aggregate(
            earned=Sum("amount", filter=Q(kind=PointsEntry.Kind.ACCRUAL)),
            returned=Sum("amount", filter=Q(kind=PointsEntry.Kind.RETURN)),
        )
        return self._page(
            request, "admin/rewards/member/refund.html", gettext("Record a refund"), member,
            form=form,
            purchase=purchase,
            refundable=money(purchase.total - purchase.refunded_total),
            total=money(purchase.total),
            refunded=money(purchase.refunded_total),
            earned=points["earned"] or 0,
            returned=-(points["returned"] or 0),
            refunds=list(purchase.refunds.select_related("actor")),
        )


def _tier_card(progress, settings_row: ProgrammeSettings) -> dict:
    """Return the sentences of the member page's tier card."""
    card = {"progress": "", "keep": "", "value": "", "percent": None, "manual": ""}
    basis = progress.basis
    card["value"] = (
        f"{capfirst(_qualification_words(settings_row))}: "
        f"{qualifying_words(progress.value, basis)}"
    )
    if progress.source == MemberTier.Source.MANUAL:
        card["manual"] = (
            gettext("Set by hand until %(date)s") % {"date": short_date(progress.manual_until)}
            if progress.manual_until else gettext("Set by hand")
        )
    if progress.next_tier is not None:
        values = {"amount": qualifying_words(progress.to_next, basis),
                  "tier": progress.next_tier.name,
                  "date": short_date(progress.window_end)}
        if progress.to_next <= 0:
            card["progress"] = gettext("Qualifies for %(tier)s") % values
        elif progress.window_end:
            card["progress"] = gettext("%(amount)s more to %(tier)s by %(date)s") % values
        else:
            card["progress"] = gettext("%(amount)s more to %(tier)s") % values
        if progress.next_tier.threshold > 0:
            card["percent"] = int(
                min(Decimal(100), progress.value * 100 / progress.next_tier.threshold)
            )
    elif progress.tier is not None:
        card["progress"] = gettext("Highest tier")
    if progress.downgrade_on is not None and progress.tier is not None:
        keep = (
            gettext("Earn %(amount)s by %(date)s to keep %(tier)s")
            if basis == TierBasis.POINTS
            else gettext("Spend %(amount)s by %(date)s to keep %(tier)s")
        )
        card["keep"] = keep % {"amount": qualifying_words(progress.to_keep, basis),
                               "date": short_date(progress.downgrade_on),
                               "tier": progress.tier.name}
    return card


def _reward_offers(*, member: Member, available: int, tier: Tier | None) -> list[dict]:
    """Return the rewards on offer today with what, at a glance, stands in the way.

    A display hint only: :func:`rewards.services.reward_redeem` decides, and its refusal
    is what the page shows if the hint was wrong.
    """
    today = timezone.localdate()
    rewards = list(
        Reward.objects.filter(is_active=True)
        .filter(Q(available_from__isnull=True) | Q(available_from__lte=today))
        .filter(Q(available_until__isnull=True) | Q(available_until__gte=today))
        .select_related("min_tier")
        .order_by("points_cost", "name")
    )
    limited = [reward.pk for reward in rewards if reward.per_member_limit is not None]
    redeemed = dict(
        Voucher.objects.filter(
            member_id=member.pk, reward_id__in=limited, source=Voucher.Source.REDEMPTION
        )
        .exclude(status=Voucher.Status.CANCELLED)
        .values_list("reward_id")
        .annotate(count=Count("id"))
    ) if limited else {}
    offers = []
    for reward in rewards:
        problems = []
        if reward.stock is not None and reward.stock <= 0:
            problems.append(gettext("out of stock"))
        if reward.min_tier is not None and (tier is None or tier.rank < reward.min_tier.rank):
            problems.append(gettext("for %(tier)s and above") % {"tier": reward.min_tier.name})
        if (
            reward.per_member_limit is not None
            and redeemed.get(reward.pk, 0) >= reward.per_member_limit
        ):
            problems.append(gettext("limit per member reached"))
        if reward.points_cost > available:
            problems.append(ngettext(
                "%(count)s point short", "%(count)s points short", reward.points_cost - available
            ) % {"count": intcomma(reward.points_cost - available)})
        offers.append({"reward": reward, "problems": problems})
    return offers
