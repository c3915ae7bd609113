"""Public campaign pages: the unsubscribe link every e-mail carries, no login."""

from django.urls import path

from campaigns import views

app_name = "campaigns"
urlpatterns = [
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
