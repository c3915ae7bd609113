"""The admin site, branded as the loyalty back-office."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _


class LoyaltyAdminSite(admin.AdminSite):
    """The back-office in which staff run the loyalty programme."""

    site_header = _("Loyalty back-office")
    site_title = _("Loyalty back-office")
    index_title = _("Programme administration")
    enable_nav_sidebar = True
    # The back-office is the whole site: no separate public site to link to.
    site_url = None
