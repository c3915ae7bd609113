"""Erasing a member blanks what they wrote in surveys and staff notes; scores stay."""

import pytest

from members.privacy import member_erase
from surveys.models import FollowUp, Response
from surveys.tests.conftest import answer

pytestmark = pytest.mark.django_db


def test_erasure_blanks_comments_and_follow_up_notes_and_keeps_the_score(
    nps_survey, member, admin_user
):
    answer(nps_survey, 3, comment="Olga here: the cashier at Tverskaya was rude", member=member)
    FollowUp.objects.filter(member=member).update(notes="Called Olga on +7 900 111 22 33")

    member_erase(member_id=member.pk, reason="Request #2", actor=admin_user)

    response = Response.objects.get(member=member)
    assert response.comment == "" and response.score == 3
    follow_up = FollowUp.objects.get(member=member)
    assert follow_up.notes == "" and follow_up.outcome_note == ""
