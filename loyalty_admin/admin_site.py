"""The admin site, branded as the loyalty back-office."""

from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _


class LoyaltyAdminSite(admin.AdminSite):
    """The back-office in which staff run the loyalty programme."""

    site_header = _("Loyalty back-office")
    site_title = _("Loyalty back-office")
    index_title = _("Programme administration")
    enable_nav_sidebar = True
    # The back-office is the whole site: no separate public site to link to.
    site_url = None

    def index(self, request, extra_context=None):
        """The home page: the find-a-member box and the user's own dashboard above the apps."""
        from loyalty_admin.dashboards.home import home_context

        return super().index(request, {**home_context(request), **(extra_context or {})})

    def login(self, request, extra_context=None):
        """The admin login, in two steps for people who turned two-factor on.

        Same as ``AdminSite.login`` except for the view class, which sends a person with
        an authenticator app to the code page instead of logging them in.
        """
        from django.contrib.admin.forms import AdminAuthenticationForm

        from loyalty_admin.security.views import TwoStepLoginView

        if request.method == "GET" and self.has_permission(request):
            return HttpResponseRedirect(reverse("admin:index", current_app=self.name))
        context = {
            **self.each_context(request),
            "title": _("Log in"),
            "subtitle": None,
            "app_path": request.get_full_path(),
            "username": request.user.get_username(),
        }
        if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
            context[REDIRECT_FIELD_NAME] = reverse("admin:index", current_app=self.name)
        context.update(extra_context or {})
        request.current_app = self.name
        return TwoStepLoginView.as_view(
            extra_context=context,
            authentication_form=self.login_form or AdminAuthenticationForm,
            template_name=self.login_template or "admin/login.html",
        )(request)

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
        from loyalty_admin.security.views import login_code_view, two_factor_view

        account_urls = [
            # Not behind admin_view: the person is not logged in until the code is right.
            path("login/code/", lambda request: login_code_view(request, admin_site=self),
                 name="login_code"),
            path("account/two-factor/",
                 self.admin_view(lambda request: two_factor_view(request, admin_site=self)),
                 name="two_factor"),
        ]
        return account_urls + export_urls + super().get_urls()
