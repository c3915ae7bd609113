"""Forms of the member pages: profile, points adjustment, status change, reversal."""

import uuid

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from members.models import Member
from members.phone import phone_display, phone_normalise

POINTS_LIMIT = 10_000_000


class MemberAdminForm(forms.ModelForm):
    """The member's profile; phone and e-mail are stored normalised."""

    class Meta:
        model = Member
        fields = (
            "card_number", "first_name", "last_name", "birth_date", "gender", "phone",
            "email", "city", "email_consent", "sms_consent", "enrolled_at", "source_channel",
            "referred_by",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.phone and "phone" in self.fields:
            self.initial["phone"] = phone_display(self.instance.phone)

    def clean_phone(self) -> str:
        raw = self.cleaned_data.get("phone", "")
        if not raw:
            return ""
        phone = phone_normalise(raw)
        if not 10 <= len(phone) <= 15:
            raise ValidationError(
                _("“%(value)s” is not a phone number: enter 10 to 15 digits, "
                  "e.g. +7 912 345-67-89."),
                code="invalid_phone", params={"value": raw},
            )
        duplicate = Member.objects.filter(phone=phone).exclude(pk=self.instance.pk)
        if duplicate.exists():
            raise ValidationError(
                _("Another member (card %(card)s) already has this phone number."),
                code="duplicate_phone",
                params={"card": duplicate.values_list("card_number", flat=True)[0]},
            )
        return phone

    def clean_email(self) -> str:
        return (self.cleaned_data.get("email") or "").strip().lower()

    def clean_card_number(self) -> str:
        return (self.cleaned_data.get("card_number") or "").strip()


class IdempotentForm(forms.Form):
    """A form that carries a key made when it was shown, so a double submit acts once."""

    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("initial", {}).setdefault("idempotency_key", uuid.uuid4().hex)
        super().__init__(*args, **kwargs)


class PointsAdjustForm(IdempotentForm):
    """Add or take away points by hand, always with a reason."""

    amount = forms.IntegerField(
        label=_("Points"),
        min_value=-POINTS_LIMIT,
        max_value=POINTS_LIMIT,
        help_text=_("Positive adds points, negative takes them away, e.g. 500 or -200."),
        error_messages={
            "required": _("Enter the number of points."),
            "invalid": _("Enter a whole number of points, e.g. 500 or -200."),
        },
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )
    reason = forms.CharField(
        label=_("Reason"),
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Shown in the member's ledger, e.g. “Goodwill for a late delivery, "
                    "ticket 4512”."),
        error_messages={
            "required": _("Give a reason: every manual change of points must say why.")
        },
    )

    def clean_amount(self) -> int:
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise ValidationError(_("Enter a number of points other than zero."), code="zero")
        return amount

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError(
                _("Give a reason: every manual change of points must say why."), code="required"
            )
        return reason


class ReasonForm(IdempotentForm):
    """A reason for a status change or a reversal."""

    reason = forms.CharField(
        label=_("Reason"),
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": _("Give a reason; it is kept in the member's history.")},
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError(_("Give a reason; it is kept in the member's history."))
        return reason


class DecisionForm(forms.Form):
    """Approve or reject a pending adjustment, with an optional note."""

    note = forms.CharField(label=_("Note"), max_length=500, required=False)
