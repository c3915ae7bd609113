"""The admin site, branded as the loyalty back-office."""

from django.contrib import admin
from django.urls import path
from django.utils.translation import gettext_lazy as _


class LoyaltyAdminSite(admin.AdminSite):
    """The back-office in which staff run the loyalty programme."""

    site_header = _("Loyalty back-office")
    site_title = _("Loyalty back-office")
    index_title = _("Programme administration")
    enable_nav_sidebar = True
    # The back-office is the whole site: no separate public site to link to.
    site_url = None

    def get_urls(self):
        """Add ``<app>/<model>/export/`` to every list whose app declares an export resource.

        The export view rebuilds the list through the model admin's own ChangeList, so
        no ModelAdmin needs to know about exports. They come before the model admins'
        own URLs, whose ``<path:object_id>/`` would otherwise catch them.
        """
        # Imported here: the site class is loaded before the apps' models are ready.
        from members.exports import export_resource_for, export_view

        export_urls = []
        for model, model_admin in self._registry.items():
            if export_resource_for(model) is None:
                continue
            opts = model._meta

            def view(request, model_admin=model_admin):
                return export_view(request, model_admin=model_admin)

            export_urls.append(path(
                f"{opts.app_label}/{opts.model_name}/export/",
                self.admin_view(view),
                name=f"{opts.app_label}_{opts.model_name}_export",
            ))
        return export_urls + super().get_urls()
