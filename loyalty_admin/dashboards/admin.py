"""Admin of the dashboards' one editable table: marketing spend per month.

Imported from ``LoyaltyAdminConfig.ready`` (the project package's own ``admin.py``
belongs to the export log).
"""

from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from loyalty_admin.dashboards.services import marketing_spend_save
from loyalty_admin.models import MarketingSpend


class MarketingSpendForm(forms.ModelForm):
    month = forms.DateField(
        label=_("month"), widget=forms.DateInput(attrs={"type": "month"}, format="%Y-%m"),
        input_formats=["%Y-%m", "%Y-%m-%d", "%d.%m.%Y"],
        help_text=_("The month the money was spent in."),
    )

    class Meta:
        model = MarketingSpend
        fields = ("month", "channel", "amount", "note")


@admin.register(MarketingSpend)
class MarketingSpendAdmin(admin.ModelAdmin):
    form = MarketingSpendForm
    list_display = ("month_column", "channel", "amount", "note", "recorded_by", "updated_at")
    list_filter = ("channel",)
    search_fields = ("channel", "note")
    list_select_related = ("recorded_by",)
    date_hierarchy = "month"
    ordering = ("-month", "channel")

    @admin.display(description=_("month"), ordering="month")
    def month_column(self, spend: MarketingSpend) -> str:
        return f"{spend.month:%Y-%m}"

    def save_model(self, request, obj, form, change):
        if change and ("month" in form.changed_data or "channel" in form.changed_data):
            # Moving a row to another month or channel: the old one goes, the new one is saved.
            MarketingSpend.objects.filter(pk=obj.pk).delete()
        saved, _created = marketing_spend_save(
            month=obj.month, amount=obj.amount, channel=obj.channel, note=obj.note,
            actor=request.user,
        )
        obj.pk = saved.pk
