from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SurveysConfig(AppConfig):
    """NPS and CSAT surveys, answers and follow-ups."""

    name = "surveys"
    verbose_name = _("Surveys")
