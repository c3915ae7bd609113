from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MembersConfig(AppConfig):
    """Members, their purchases and their points account (the ledger)."""

    name = "members"
    verbose_name = _("Members and points")
