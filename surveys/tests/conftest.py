"""Fixtures of the surveys app's tests: surveys, members, invitations, role users."""

from datetime import timedelta

import pytest
from django.utils import timezone

from members.tests.factories import MemberFactory
from surveys import services
from surveys.models import Invitation, Survey


@pytest.fixture(autouse=True)
def survey_roles(db, roles_present):
    """The role groups with every app's grants, this one's included (the root fixture):
    a transaction=True test's flush empties them otherwise."""


@pytest.fixture
def nps_survey(db):
    return Survey.objects.create(
        code="nps-test", name="NPS test", kind=Survey.Kind.NPS, default_language="en",
        starts_at=timezone.now() - timedelta(days=400),
    )


@pytest.fixture
def csat_survey(db):
    return Survey.objects.create(
        code="csat-test", name="CSAT test", kind=Survey.Kind.CSAT, csat_scale=5,
        touchpoint="delivery", starts_at=timezone.now() - timedelta(days=400),
    )


@pytest.fixture
def member(db):
    return MemberFactory(first_name="Olga", last_name="Smirnova", card_number="2000000000011",
                         email_consent=True, language="en")


def invite(survey, member, *, now=None) -> str:
    """Invite ``member`` (without sending) and return the link's token."""
    batch = services.invitations_create(survey_id=survey.pk, member_ids=[member.pk],
                                        now=now, send=False)
    return services.invitation_token(Invitation.objects.get(pk=batch.created_ids[0]))


def answer(survey, score, *, comment="", at=None, member=None) -> None:
    """Store one answer through an invitation link, at ``at`` (default now)."""
    at = at or timezone.now()
    member = member or MemberFactory()
    token = invite(survey, member, now=at - timedelta(hours=1))
    services.response_submit(token=token, data=services.AnswerInput(score=score,
                                                                    comment=comment), now=at)
