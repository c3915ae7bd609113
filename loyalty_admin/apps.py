"""App configs of the project package."""

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.utils.translation import gettext_lazy as _


class LoyaltyAdminSiteConfig(admin_apps.AdminConfig):
    """Make the branded loyalty site the default ``admin.site``."""

    default = False
    default_site = "loyalty_admin.admin_site.LoyaltyAdminSite"


class LoyaltyAdminConfig(AppConfig):
    default = True
    """The project package: settings, URLs, admin site, dashboards."""

    name = "loyalty_admin"
    verbose_name = _("Loyalty back-office")

    def ready(self):
        # The dashboards' admin (marketing spend) and its export columns; its import kind
        # is listed in LOYALTY_IMPORT_KINDS.
        from loyalty_admin.dashboards import admin as dashboards_admin  # noqa: F401
        from loyalty_admin.dashboards import resources  # noqa: F401
