"""Forms of the survey screens in the back-office."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.models import Member
from surveys.models import FollowUp, Invitation, Question, Response, Sentiment
from surveys.sentiment import THEME_LABELS
from surveys.services import loyalty_formula_check

CARDS_UNKNOWN = _("No member has these card numbers: %(cards)s.")
NOBODY_CHOSEN = _("Give card numbers or choose a segment.")
BOTH_CHOSEN = _("Give card numbers or choose a segment, not both.")
PERIOD_ORDER = _("The end must not be before the start.")
PERIOD_TOO_LONG = _("Choose a period of at most 3 years.")


class QuestionFormSet(BaseInlineFormSet):
    """Check the survey's loyalty index formula against the questions being saved."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        codes = {
            form.cleaned_data["code"] for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
            and form.cleaned_data.get("kind") == Question.Kind.SCALE
        }
        problems = loyalty_formula_check(self.instance.loyalty_formula or "", codes)
        if problems:
            raise ValidationError(
                [_("Loyalty index formula: %(problem)s") % {"problem": p} for p in problems]
            )


def _segment_field():
    try:
        from campaigns.models import Segment
    except ImportError:
        return None
    return forms.ModelChoiceField(
        label=_("or a segment"), queryset=Segment.objects.order_by("name"), required=False,
        help_text=_("Every member of the segment is invited, each once."),
    )


class InviteForm(forms.Form):
    """Invite members picked by hand (card numbers) or a saved segment."""

    cards = forms.CharField(
        label=_("Card numbers"), required=False,
        widget=forms.Textarea(attrs={"rows": 5, "placeholder": "2000000000011\n2000000000012"}),
        help_text=_("One per line, or separated by commas or spaces."),
    )
    channel = forms.ChoiceField(label=_("Send by"), choices=Invitation.Channel.choices)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        segment = _segment_field()
        if segment is not None:
            self.fields["segment"] = segment
            self.order_fields(["cards", "segment", "channel"])

    def clean(self):
        data = super().clean()
        raw = (data.get("cards") or "").replace(",", " ").split()
        segment = data.get("segment")
        if raw and segment:
            raise ValidationError(BOTH_CHOSEN)
        if not raw and not segment:
            raise ValidationError(NOBODY_CHOSEN)
        if raw:
            cards = list(dict.fromkeys(raw))
            found = dict(Member.objects.filter(card_number__in=cards)
                         .values_list("card_number", "id"))
            missing = [card for card in cards if card not in found]
            if missing:
                self.add_error("cards", CARDS_UNKNOWN % {"cards": ", ".join(missing[:20])})
            data["member_ids"] = [found[card] for card in cards if card in found]
        return data


class ResolveForm(forms.Form):
    """Close a follow-up: the outcome, a note, and goodwill points if any."""

    outcome = forms.ChoiceField(label=_("Outcome"), choices=FollowUp.Outcome.choices)
    note = forms.CharField(label=_("Note"), max_length=500, required=False,
                           widget=forms.Textarea(attrs={"rows": 3}))
    goodwill_points = forms.IntegerField(
        label=_("Goodwill points"), min_value=0, max_value=100000, initial=0, required=False,
        help_text=_("Points given to the member as an apology; 0 for none. Posted once."),
    )
    key = forms.CharField(widget=forms.HiddenInput, required=False)


class PeriodForm(forms.Form):
    """The period and grain of the results page."""

    start = forms.DateField(label=_("From"), required=False,
                            widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("To"), required=False,
                          widget=forms.DateInput(attrs={"type": "date"}))
    grain = forms.ChoiceField(label=_("Trend by"), required=False,
                              choices=[("week", _("week")), ("month", _("month"))])
    pivot = forms.DateField(label=_("Compare around"), required=False,
                            widget=forms.DateInput(attrs={"type": "date"}),
                            help_text=_("e.g. the day of a programme change"))
    days = forms.IntegerField(label=_("days on each side"), required=False, min_value=1,
                              max_value=365)

    def clean(self):
        data = super().clean()
        today = timezone.localdate()
        data["end"] = data.get("end") or today
        data["start"] = data.get("start") or data["end"] - timedelta(days=89)
        if data["end"] < data["start"]:
            raise ValidationError(PERIOD_ORDER)
        if (data["end"] - data["start"]).days > 3 * 366:
            raise ValidationError(PERIOD_TOO_LONG)
        data["grain"] = data.get("grain") or "week"
        data["days"] = data.get("days") or 30
        return data


class ResponseClassifyForm(forms.ModelForm):
    """Correct the sentiment and themes of an answer's comment."""

    theme_list = forms.MultipleChoiceField(
        label=_("Themes"), required=False, widget=forms.CheckboxSelectMultiple,
        choices=list(THEME_LABELS.items()),
    )

    class Meta:
        model = Response
        fields = ["sentiment_override"]
        widgets = {"sentiment_override": forms.Select(
            choices=[("", _("— computed —"))] + list(Sentiment.choices))}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["theme_list"].initial = self.instance.theme_list
