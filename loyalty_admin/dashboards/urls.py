"""Dashboard pages, served inside the admin site (staff only, permission-checked)."""

app_name = "dashboards"
urlpatterns: list = []
