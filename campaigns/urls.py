"""Public campaign pages: the unsubscribe link every e-mail carries, no login."""

app_name = "campaigns"
urlpatterns: list = []
