"""Forms of the programme's admin pages: redeem, set a tier, refund, simulate, cancel."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.forms import IdempotentForm
from members.models import Member, ProductCategory
from rewards.models import EarningRule, Reward, Tier

SIMULATE_LINES = 6
MONEY_LIMIT = Decimal("9999999999.99")


class RewardRedeemForm(IdempotentForm):
    """Pick one reward of the catalogue for a member (the service decides if it may be had)."""

    reward = forms.ModelChoiceField(
        label=_("Reward"),
        queryset=Reward.objects.all(),
        widget=forms.RadioSelect,
        error_messages={
            "required": _("Choose a reward."),
            "invalid_choice": _("This reward does not exist any more; choose another one."),
        },
    )


class TierSetForm(forms.Form):
    """Set a member's tier by hand, with a reason and an optional end date."""

    tier = forms.ModelChoiceField(
        label=_("Tier"),
        queryset=Tier.objects.order_by("rank"),
        empty_label=None,
        error_messages={"required": _("Choose a tier.")},
    )
    reason = forms.CharField(
        label=_("Reason"),
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Kept in the member's tier history, e.g. “VIP invitation, ticket 981”."),
        error_messages={"required": _("Give a reason for setting the tier by hand.")},
    )
    until = forms.DateField(
        label=_("Until"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text=_("The tier holds until this day; then the evaluation applies again. "
                    "Empty: until someone changes it."),
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError(_("Give a reason for setting the tier by hand."),
                                  code="required")
        return reason

    def clean_until(self):
        until = self.cleaned_data.get("until")
        if until is not None and until < timezone.localdate():
            raise ValidationError(_("Choose today or a later day."), code="past")
        return until


class PurchaseRefundForm(IdempotentForm):
    """Record a full or partial return of a receipt."""

    amount = forms.DecimalField(
        label=_("Amount refunded"),
        max_digits=12,
        decimal_places=2,
        min_value=Decimal("0.01"),
        max_value=MONEY_LIMIT,
        localize=True,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
        error_messages={
            "required": _("Enter the amount refunded."),
            "invalid": _("Enter an amount of money, e.g. 1500 or 1500.50."),
        },
    )
    reason = forms.CharField(
        label=_("Reason"),
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Shown in the member's ledger beside the points returned."),
        error_messages={"required": _("Give a reason for the refund.")},
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError(_("Give a reason for the refund."), code="required")
        return reason


class VoucherCancelForm(forms.Form):
    """Cancel an issued voucher; its points come back by a reversal."""

    reason = forms.CharField(
        label=_("Reason"),
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Shown in the member's ledger beside the points returned."),
        error_messages={"required": _("Give a reason for cancelling the voucher.")},
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError(_("Give a reason for cancelling the voucher."),
                                  code="required")
        return reason


class EarningRuleForm(forms.ModelForm):
    """An earning rule; says which fields each kind of rule needs before the database does."""

    # Fields a kind of rule cannot do without (the table's check constraints say the same).
    REQUIRED_BY_KIND = {
        EarningRule.Kind.BASE: ("points_per_unit",),
        EarningRule.Kind.CATEGORY: ("category", "multiplier"),
        EarningRule.Kind.SKU: ("sku", "multiplier"),
        EarningRule.Kind.EXCLUDE: ("category",),
    }

    class Meta:
        model = EarningRule
        fields = (
            "name", "kind", "points_per_unit", "rounding", "min_purchase", "multiplier",
            "category", "sku", "valid_from", "valid_until", "is_active",
        )

    def clean(self):
        cleaned = super().clean()
        for name in self.REQUIRED_BY_KIND.get(cleaned.get("kind"), ()):
            if name in self.fields and cleaned.get(name) in (None, ""):
                self.add_error(name, ValidationError(
                    _("A rule of the kind “%(kind)s” needs this field."),
                    code="required_by_kind",
                    params={"kind": EarningRule.Kind(cleaned["kind"]).label},
                ))
        return cleaned


class RewardAdminForm(forms.ModelForm):
    """A catalogue entry; remembers the stock it showed so a save never undoes redemptions."""

    stock_shown = forms.IntegerField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Reward
        fields = (
            "name", "kind", "description", "is_active", "points_cost", "value", "partner",
            "available_from", "available_until", "min_tier", "per_member_limit", "stock",
            "voucher_valid_days",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial.setdefault("stock_shown", self.instance.stock)


class SimulateForm(forms.Form):
    """A member (or a tier) and a basket of up to six lines to compute points for."""

    card_number = forms.CharField(
        label=_("Card number"), max_length=32, required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "numeric"}),
        help_text=_("The member's tier applies. Or choose a tier instead."),
    )
    tier = forms.ModelChoiceField(
        label=_("Tier"), queryset=Tier.objects.order_by("rank"), required=False,
        empty_label=_("No tier"),
    )
    on = forms.DateField(
        label=_("Purchase date"), required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text=_("The rules valid on this day apply. Empty: today."),
    )
    total = forms.DecimalField(
        label=_("Receipt total"), max_digits=12, decimal_places=2, min_value=0,
        max_value=MONEY_LIMIT, required=False, localize=True,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
        help_text=_("What the customer paid, after discounts. Empty: the sum of the lines."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        categories = list(ProductCategory.objects.order_by("name"))
        for number in range(1, SIMULATE_LINES + 1):
            category = forms.ModelChoiceField(
                label=_("Category"), queryset=ProductCategory.objects.order_by("name"),
                required=False, empty_label="—",
            )
            # One query for the six selects instead of one each.
            category.choices = [("", "—")] + [(c.pk, c.name) for c in categories]
            self.fields[f"category_{number}"] = category
            self.fields[f"sku_{number}"] = forms.CharField(
                label=_("SKU"), max_length=64, required=False,
                widget=forms.TextInput(attrs={"autocomplete": "off", "size": 12}),
            )
            self.fields[f"amount_{number}"] = forms.DecimalField(
                label=_("Amount"), max_digits=12, decimal_places=2, min_value=0,
                max_value=MONEY_LIMIT, required=False, localize=True,
                widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off",
                                              "size": 10}),
            )
        self._categories = {category.pk: category for category in categories}

    def line_rows(self) -> list[tuple]:
        """Return (number, category, SKU, amount) bound fields, one row per basket line."""
        return [
            (number, self[f"category_{number}"], self[f"sku_{number}"], self[f"amount_{number}"])
            for number in range(1, SIMULATE_LINES + 1)
        ]

    def clean_card_number(self) -> str:
        """Return the card number typed; the member it belongs to goes to ``member``."""
        card = (self.cleaned_data.get("card_number") or "").strip()
        self.cleaned_data["member"] = None
        if card:
            member = Member.objects.filter(card_number=card).first()
            if member is None:
                raise ValidationError(_("No member has the card number %(card)s."),
                                      code="unknown_card", params={"card": card})
            self.cleaned_data["member"] = member
        return card

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("card_number") and cleaned.get("tier"):
            raise ValidationError(
                _("Enter a card number or choose a tier, not both."), code="member_and_tier"
            )
        lines = []
        for number in range(1, SIMULATE_LINES + 1):
            category = cleaned.get(f"category_{number}")
            sku = (cleaned.get(f"sku_{number}") or "").strip()
            amount = cleaned.get(f"amount_{number}")
            if amount is None:
                if (category or sku) and f"amount_{number}" not in self.errors:
                    self.add_error(f"amount_{number}", ValidationError(
                        _("Enter the line's amount."), code="line_amount"))
                continue
            lines.append({"category": category, "sku": sku, "amount": amount})
        cleaned["lines"] = lines
        if cleaned.get("total") is None and not lines and not self.errors:
            raise ValidationError(
                _("Enter the receipt total or at least one line."), code="empty_basket"
            )
        return cleaned
