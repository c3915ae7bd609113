"""Public survey pages: members answer by their invitation link, no login."""

from django.urls import path

from surveys import views

app_name = "surveys"
urlpatterns = [
    path("a/<str:token>/", views.answer, name="answer"),
    path("a/<str:token>/thanks/", views.thanks, name="thanks"),
]
