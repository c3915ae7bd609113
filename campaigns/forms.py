"""Forms of the campaigns admin: segment criteria, card list upload, preview, test send."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from campaigns.models import Campaign, CampaignVariant, RfmSegment, Segment
from campaigns.selectors import NO_RFM
from members.models import Member, ProductCategory

CONSENT_CHOICES = [("", _("Any")), ("yes", _("Given")), ("no", _("Not given"))]
MONTH_CHOICES = [
    (1, _("January")), (2, _("February")), (3, _("March")), (4, _("April")), (5, _("May")),
    (6, _("June")), (7, _("July")), (8, _("August")), (9, _("September")),
    (10, _("October")), (11, _("November")), (12, _("December")),
]

# Form field name -> how it is stored in Segment.criteria.
_LISTS = ("tiers", "rfm_segments", "favourite_categories", "genders", "birthday_months")
_INTEGERS = ("days_since_purchase_min", "days_since_purchase_max", "window_days",
             "purchases_min", "purchases_max", "age_min", "age_max", "balance_min",
             "balance_max", "expiring_within_days", "expiring_points_min")
_DECIMALS = ("spend_min", "spend_max")
_DATES = ("enrolled_from", "enrolled_to")
_CHOICES = ("email_consent", "sms_consent")
CRITERIA_FIELDS = (*_LISTS, *_INTEGERS, *_DECIMALS, *_DATES, *_CHOICES, "cities")


def _tier_choices():
    from rewards.models import Tier

    return [(tier.id, tier.name) for tier in Tier.objects.order_by("rank")]


def _category_choices():
    return [(c.id, c.name) for c in ProductCategory.objects.order_by("name")]


def _number(label, help_text="", minimum=0, **kwargs):
    return forms.IntegerField(label=label, required=False, min_value=minimum,
                              help_text=help_text, **kwargs)


class SegmentForm(forms.ModelForm):
    """A segment with its criteria as form fields (stored as JSON) or a card list file."""

    tiers = forms.TypedMultipleChoiceField(
        label=_("Tier"), required=False, coerce=int, choices=_tier_choices,
        widget=forms.CheckboxSelectMultiple,
    )
    rfm_segments = forms.MultipleChoiceField(
        label=_("RFM segment"), required=False,
        choices=[*RfmSegment.choices, (NO_RFM, _("No RFM score (no purchase in window)"))],
        widget=forms.CheckboxSelectMultiple,
    )
    enrolled_from = forms.DateField(label=_("Enrolled from"), required=False,
                                    widget=forms.DateInput(attrs={"type": "date"}))
    enrolled_to = forms.DateField(label=_("Enrolled until"), required=False,
                                  widget=forms.DateInput(attrs={"type": "date"}))
    days_since_purchase_min = _number(_("Days since last purchase: at least"))
    days_since_purchase_max = _number(_("Days since last purchase: at most"))
    window_days = _number(_("Spend and purchases counted over (days)"), minimum=1,
                          help_text=_("Default 365."))
    spend_min = forms.DecimalField(label=_("Total spend: at least"), required=False,
                                   min_value=0, decimal_places=2)
    spend_max = forms.DecimalField(label=_("Total spend: at most"), required=False,
                                   min_value=0, decimal_places=2)
    purchases_min = _number(_("Purchases: at least"))
    purchases_max = _number(_("Purchases: at most"))
    favourite_categories = forms.TypedMultipleChoiceField(
        label=_("Favourite category"), required=False, coerce=int, choices=_category_choices,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The category a member spent most on in the RFM window."),
    )
    cities = forms.CharField(label=_("City"), required=False,
                             help_text=_("One or more, separated by commas."))
    age_min = _number(_("Age: at least"))
    age_max = _number(_("Age: at most"))
    genders = forms.MultipleChoiceField(
        label=_("Gender"), required=False, choices=Member.Gender.choices,
        widget=forms.CheckboxSelectMultiple,
    )
    birthday_months = forms.TypedMultipleChoiceField(
        label=_("Birthday month"), required=False, coerce=int, choices=MONTH_CHOICES,
        widget=forms.CheckboxSelectMultiple,
    )
    email_consent = forms.ChoiceField(label=_("E-mail consent"), required=False,
                                      choices=CONSENT_CHOICES)
    sms_consent = forms.ChoiceField(label=_("SMS consent"), required=False,
                                    choices=CONSENT_CHOICES)
    balance_min = _number(_("Points balance: at least"), minimum=None)
    balance_max = _number(_("Points balance: at most"), minimum=None)
    expiring_within_days = _number(_("Points expiring within (days)"), minimum=1)
    expiring_points_min = _number(_("Expiring points: at least"), minimum=1,
                                  help_text=_("Default 1."))
    card_list = forms.FileField(
        label=_("Card numbers file"), required=False,
        help_text=_("Static segments: a CSV or text file with one card number per line "
                    "(first column). Uploading replaces the list. Any unknown or repeated "
                    "card number rejects the whole file."),
    )

    class Meta:
        model = Segment
        fields = ["name", "description", "kind"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        criteria = (self.instance.criteria if self.instance and self.instance.pk else {}) or {}
        for name in CRITERIA_FIELDS:
            if name in criteria:
                value = criteria[name]
                self.initial[name] = ", ".join(value) if name == "cities" else value
        self.member_ids: list[int] | None = None

    def clean(self):
        cleaned = super().clean()
        for low, high in (("days_since_purchase_min", "days_since_purchase_max"),
                          ("spend_min", "spend_max"), ("purchases_min", "purchases_max"),
                          ("age_min", "age_max"), ("balance_min", "balance_max"),
                          ("enrolled_from", "enrolled_to")):
            if cleaned.get(low) is not None and cleaned.get(high) is not None and \
                    cleaned[low] > cleaned[high]:
                self.add_error(high, _("Must not be below the lower bound."))
        upload = cleaned.get("card_list")
        if upload:
            if cleaned.get("kind") != Segment.Kind.STATIC:
                self.add_error("card_list", _("Only a static segment takes a card list."))
            elif upload.size > 20 * 1024 * 1024:
                self.add_error("card_list", _("The file is larger than 20 MB."))
            else:
                from campaigns.services import CardListRejected, card_list_parse

                try:
                    self.member_ids = card_list_parse(content=upload.read())
                except CardListRejected as error:
                    self.add_error("card_list", error)
        elif cleaned.get("kind") == Segment.Kind.STATIC and not (
            self.instance.pk and self.instance.kind == Segment.Kind.STATIC
        ):
            self.add_error("card_list", _("Upload the card numbers of a static segment."))
        return cleaned

    def criteria(self) -> dict:
        """Return the cleaned criteria as JSON-ready values, empty ones left out."""
        criteria: dict = {}
        data = self.cleaned_data
        for name in CRITERIA_FIELDS:
            value = data.get(name)
            if value in (None, "", [], ()):
                continue
            if name in _DECIMALS:
                value = str(value)
            elif name in _DATES:
                value = value.isoformat()
            elif name == "cities":
                value = [city.strip() for city in value.split(",") if city.strip()]
                if not value:
                    continue
            criteria[name] = value
        return criteria

    def save(self, commit=True):
        segment = super().save(commit=False)
        segment.criteria = self.criteria() if segment.kind == Segment.Kind.DYNAMIC else {}
        if commit:
            segment.save()
        return segment


class SegmentPreviewForm(SegmentForm):
    """The same fields, validated without the name's uniqueness, for the live count."""

    def validate_unique(self):
        return None

    def _post_clean(self):
        return None


class CampaignForm(forms.ModelForm):
    class Meta:
        model = Campaign
        fields = ["name", "kind", "description", "segment", "channel", "starts_at", "ends_at",
                  "bonus_points", "multiplier", "reward", "offer_discount_percent",
                  "inactive_days", "expiring_within_days", "winners", "budget_points",
                  "budget_vouchers", "control_percent", "attribution_days"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("kind") == Campaign.Kind.OFFER and cleaned.get("reward") is None and \
                not cleaned.get("offer_discount_percent"):
            raise ValidationError(_("An offer needs a catalogue reward or a discount."))
        return cleaned


class MessagePreviewForm(forms.Form):
    """Which member and variant to show the message for."""

    member = forms.CharField(
        label=_("Member card number"),
        help_text=_("The message is filled in with this member's data."),
    )
    variant = forms.ModelChoiceField(label=_("Variant"), queryset=CampaignVariant.objects.none())

    def __init__(self, *args, campaign: Campaign, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["variant"].queryset = campaign.variants.order_by("code")
        self.fields["variant"].empty_label = None

    def clean_member(self):
        card = self.cleaned_data["member"].strip()
        member = Member.objects.filter(card_number=card).first()
        if member is None:
            raise ValidationError(_("No member has card number %(card)s."), params={"card": card})
        return member
