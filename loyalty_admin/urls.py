"""Project URLs: the back-office admin, language switching, health check."""

from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path
from django.views.generic import RedirectView


def health(request):
    """Return 200 so load balancers can tell the process is up."""
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("i18n/", include("django.conf.urls.i18n")),
    path("health/", health, name="health"),
    path("survey/", include("surveys.urls")),
    path("messages/", include("campaigns.urls")),
    # Before the admin's catch-all so /admin/dashboards/ is ours.
    path("admin/dashboards/", include("loyalty_admin.dashboards.urls")),
    path("admin/", admin.site.urls),
]
