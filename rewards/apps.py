from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RewardsConfig(AppConfig):
    """The programme: tiers, earning rules, reward catalogue, redemptions."""

    name = "rewards"
    verbose_name = _("Programme and rewards")
