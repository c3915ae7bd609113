"""The member page's survey panel: the member's answers and follow-ups."""

from django.http import HttpRequest

from members.models import Member
from surveys.selectors import member_survey_story


def member_surveys_panel(request: HttpRequest, member: Member) -> dict | None:
    """Return the panel's context (two queries), or None for users who may not see it."""
    user = request.user
    if not (user.has_perm("surveys.view_response") or user.has_perm("surveys.view_followup")):
        return None
    story = member_survey_story(member_id=member.pk)
    return {
        **story,
        "can_resolve": user.has_perm("surveys.resolve_followup"),
        "can_see_follow_ups": user.has_perm("surveys.view_followup"),
    }
