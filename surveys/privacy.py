"""The surveys' part of a member's erasure: what the member wrote and what staff noted.

Scores, dates and the follow-up's status stay (the NPS and CSAT figures do not change);
the free text a member typed and the notes staff wrote about them are blanked.
"""

from surveys.models import Answer, FollowUp, Response


def member_survey_texts_erase(member_id: int) -> None:
    """Blank the member's comments and text answers and the notes on their follow-ups."""
    Response.objects.filter(member_id=member_id).update(comment="")
    Answer.objects.filter(response__member_id=member_id).update(text="")
    FollowUp.objects.filter(member_id=member_id).update(notes="", outcome_note="")
