from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CampaignsConfig(AppConfig):
    """Segments, promotions and messages to members."""

    name = "campaigns"
    verbose_name = _("Campaigns")

    def ready(self) -> None:
        from campaigns.panels import member_panels_register
        from campaigns.privacy import member_messages_erase
        from campaigns.selectors import campaign_multipliers_lookup
        from members.privacy import PrivacyPart, privacy_part_register
        from rewards.engine import bonus_multiplier_lookup_register

        bonus_multiplier_lookup_register(campaign_multipliers_lookup)
        member_panels_register()
        privacy_part_register(PrivacyPart(key="campaigns", erase=member_messages_erase))
