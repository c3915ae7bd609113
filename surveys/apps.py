from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SurveysConfig(AppConfig):
    """NPS and CSAT surveys, answers and follow-ups."""

    name = "surveys"
    verbose_name = _("Surveys")

    def ready(self) -> None:
        from members.panels import MemberPanel, member_panel_register
        from members.privacy import PrivacyPart, privacy_part_register
        from surveys import importing  # noqa: F401 - registers the survey answers import
        from surveys.panels import member_surveys_panel
        from surveys.privacy import member_survey_texts_erase

        member_panel_register(MemberPanel(
            key="surveys", template="admin/surveys/member_panel.html",
            context=member_surveys_panel, place="story", order=60,
        ))
        privacy_part_register(PrivacyPart(key="surveys", erase=member_survey_texts_erase))
