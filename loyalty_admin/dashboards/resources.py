"""The marketing spend list's export columns (found by ``members.exports``)."""

from loyalty_admin.models import MarketingSpend
from members.exports import ExportResource


class MarketingSpendExportResource(ExportResource):
    class Meta:
        model = MarketingSpend
        fields = ("month", "channel", "amount", "note", "updated_at")
