"""Dashboard pages, served inside the admin site (staff only, permission-checked)."""

from django.urls import path

from loyalty_admin.dashboards import views

app_name = "dashboards"
urlpatterns = [
    path("", views.admin.site.admin_view(views.index_view), name="index"),
    path("overview/", views.overview_view, name="overview"),
    path("points/", views.points_view, name="points"),
    path("retention/", views.retention_view, name="retention"),
    path("acquisition/", views.acquisition_view, name="acquisition"),
    path("value/", views.value_view, name="value"),
    path("feedback/", views.feedback_view, name="feedback"),
    path("before-after/", views.compare_view, name="compare"),
    path("support/", views.support_view, name="support"),
    path("how-we-compute/", views.methods_view, name="methods"),
    path("recompute/", views.recompute_view, name="recompute"),
    path("<str:name>/export/<str:table_key>/", views.export_view, name="export"),
]
