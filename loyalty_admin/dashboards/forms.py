"""The dashboards' filter forms: period, store, tier, churn window; the before/after pick."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext, pgettext_lazy

from loyalty_admin.dashboards.periods import DEFAULT_PRESET, PRESETS, Period, preset_period
from loyalty_admin.dashboards.selectors import CHURN_CHOICES, DEFAULT_CHURN_DAYS, Scope

MAX_DAYS = 3 * 366
FIRST_AFTER_LAST = _("The first day must not be after the last day.")
CUSTOM_NEEDS_DATES = _("Custom dates need both the first and the last day.")
TOO_LONG = _("Choose at most three years.")
IN_FUTURE = _("The last day cannot be after today.")

KPI_CHOICES = (
    ("revenue", _("Revenue")),
    ("purchases", _("Purchases")),
    ("member_aov", _("Average order value, members")),
    ("other_aov", _("Average order value, non-members")),
    ("participation", _("Participation (share of purchases by members)")),
    ("new", _("New members")),
    ("active", _("Active members")),
    ("crr", _("Customer retention rate")),
    ("repeat_rate", _("Repeat purchase rate")),
    ("frequency", _("Purchase frequency")),
    ("issued", _("Points issued")),
    ("redeemed", _("Points redeemed")),
    ("redemption_rate", _("Redemption rate")),
    ("cac", _("Cost of acquiring a member (whole months)")),
)
WINDOW_CHOICES = ((7, _("7 days")), (14, _("14 days")), (30, _("30 days")), (60, _("60 days")),
                  (90, _("90 days")))


class FilterForm(forms.Form):
    """The period, store and tier of a dashboard, read from the query string."""

    preset = forms.ChoiceField(label=_("Period"), choices=PRESETS, required=False)
    first = forms.DateField(label=pgettext_lazy("start of a period", "from"), required=False,
                            widget=forms.DateInput(attrs={"type": "date"}))
    last = forms.DateField(label=pgettext_lazy("end of a period", "to"), required=False,
                           widget=forms.DateInput(attrs={"type": "date"}))
    store = forms.TypedChoiceField(label=_("Store"), coerce=int, required=False,
                                   empty_value=None)
    tier = forms.TypedChoiceField(label=_("Tier"), coerce=int, required=False,
                                  empty_value=None)
    churn = forms.TypedChoiceField(
        label=_("Inactive after"), coerce=int, required=False, empty_value=None,
        initial=DEFAULT_CHURN_DAYS,
        choices=[(days, days) for days in CHURN_CHOICES],
    )

    def __init__(self, data, *, stores: dict[int, str], tiers: dict[int, str]):
        super().__init__(data)
        self.fields["store"].choices = [("", _("All stores")), *stores.items()]
        self.fields["tier"].choices = [("", _("All tiers")), *tiers.items()]
        # Labelled per request: a label built at import would stay in the first language.
        self.fields["churn"].choices = [
            (days, ngettext("%(days)s day", "%(days)s days", days) % {"days": days})
            for days in CHURN_CHOICES
        ]

    def clean(self):
        data = super().clean()
        if data.get("preset") == "custom":
            first, last = data.get("first"), data.get("last")
            if not first or not last:
                raise forms.ValidationError(CUSTOM_NEEDS_DATES)
            if first > last:
                self.add_error("first", FIRST_AFTER_LAST)
            elif last > timezone.localdate():
                self.add_error("last", IN_FUTURE)
            elif (last - first).days >= MAX_DAYS:
                self.add_error("first", TOO_LONG)
        return data

    def scope(self) -> Scope:
        """Return the scope chosen, or the default one where the input was wrong."""
        today = timezone.localdate()
        data = self.cleaned_data if self.is_valid() else {}
        preset = data.get("preset") or DEFAULT_PRESET
        if preset == "custom" and data.get("first") and data.get("last"):
            period = Period(data["first"], data["last"])
        else:
            period = preset_period(preset if preset != "custom" else DEFAULT_PRESET, today=today)
        return Scope.of(
            period, store_id=data.get("store"), tier_id=data.get("tier"),
            churn_days=data.get("churn") or DEFAULT_CHURN_DAYS,
        )


class BeforeAfterForm(forms.Form):
    """A day and a KPI: equal windows before and from that day."""

    on = forms.DateField(label=_("Change made on"), required=False,
                         widget=forms.DateInput(attrs={"type": "date"}))
    kpi = forms.ChoiceField(label=_("KPI"), choices=KPI_CHOICES, required=False,
                            initial="revenue")
    window = forms.TypedChoiceField(label=_("Window"), choices=WINDOW_CHOICES, coerce=int,
                                    required=False, empty_value=None, initial=30)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["on"].initial = timezone.localdate() - timedelta(days=29)

    def clean_on(self):
        on = self.cleaned_data.get("on")
        if on and on > timezone.localdate():
            raise forms.ValidationError(IN_FUTURE)
        return on

    def choice(self) -> tuple[Period, Period, str, int]:
        """Return the window after (from the day), the window before, the KPI, the days."""
        data = self.cleaned_data if self.is_valid() else {}
        window = data.get("window") or 30
        on = data.get("on") or timezone.localdate() - timedelta(days=window - 1)
        after = Period(on, on + timedelta(days=window - 1))
        return after, after.previous(), data.get("kpi") or "revenue", window
