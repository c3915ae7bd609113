"""Public survey pages: members answer by their invitation link, no login."""

app_name = "surveys"
urlpatterns: list = []
