"""Closing the loop: unhappy answers open one follow-up; resolving may give goodwill once."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from members.models import Member, PointsEntry
from members.services import member_status_change
from members.tests.factories import ledger_sum
from surveys import services
from surveys.models import FollowUp
from surveys.tests.conftest import answer, invite

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("score, opens", [(0, True), (6, True), (7, False), (10, False)])
def test_an_nps_detractor_opens_exactly_one_follow_up(nps_survey, member, score, opens):
    answer(nps_survey, score, member=member, comment="Slow and rude")
    assert FollowUp.objects.count() == (1 if opens else 0)
    if opens:
        follow_up = FollowUp.objects.get()
        assert follow_up.member == member
        assert follow_up.status == FollowUp.Status.OPEN
        assert follow_up.due_date == timezone.localdate() + timedelta(days=3)


@pytest.mark.parametrize("scale, score, opens", [
    (5, 1, True), (5, 2, True), (5, 3, False), (10, 2, True), (10, 3, False),
])
def test_a_csat_answer_in_the_bottom_two_boxes_opens_one(csat_survey, scale, score, opens):
    csat_survey.csat_scale = scale
    csat_survey.save()
    answer(csat_survey, score)
    assert FollowUp.objects.count() == (1 if opens else 0)


def test_the_same_link_twice_opens_one_follow_up(nps_survey, member):
    token = invite(nps_survey, member)
    services.response_submit(token=token, data=services.AnswerInput(score=2))
    with pytest.raises(services.SurveyLinkError):
        services.response_submit(token=token, data=services.AnswerInput(score=1))
    assert FollowUp.objects.count() == 1


def test_resolving_with_goodwill_posts_the_points_once(nps_survey, member, support_user):
    answer(nps_survey, 3, member=member)
    follow_up = FollowUp.objects.get()
    services.follow_up_resolve(follow_up_id=follow_up.pk, outcome="solved",
                               note="Apologised by phone", goodwill_points=150,
                               actor=support_user)
    with pytest.raises(ValidationError) as refused:
        services.follow_up_resolve(follow_up_id=follow_up.pk, outcome="solved",
                                   goodwill_points=150, actor=support_user)
    assert str(services.FOLLOW_UP_RESOLVED) in refused.value.messages
    entry = PointsEntry.objects.get(member=member)
    assert (entry.kind, entry.amount, entry.idempotency_key) == (
        "goodwill", 150, f"survey-follow-up:{follow_up.pk}")
    assert entry.actor == support_user
    assert "Apologised by phone" in entry.reason
    member.refresh_from_db()
    assert member.points_balance == ledger_sum(member) == 150
    follow_up.refresh_from_db()
    assert (follow_up.status, follow_up.outcome, follow_up.goodwill_entry) == (
        "resolved", "solved", entry)
    assert follow_up.resolved_by == support_user and follow_up.owner == support_user


def test_goodwill_to_a_blocked_member_is_refused_and_nothing_changes(
    nps_survey, member, support_user
):
    answer(nps_survey, 0, member=member)
    member_status_change(member_id=member.pk, status=Member.Status.BLOCKED,
                         reason="Fraud check", actor=support_user)
    follow_up = FollowUp.objects.get()
    with pytest.raises(ValidationError):
        services.follow_up_resolve(follow_up_id=follow_up.pk, outcome="solved",
                                   goodwill_points=100, actor=support_user)
    follow_up.refresh_from_db()
    assert follow_up.status == FollowUp.Status.OPEN
    assert PointsEntry.objects.filter(member=member).count() == 0


def test_support_resolves_on_the_page_and_a_double_post_gives_points_once(
    client, nps_survey, member, support_user
):
    answer(nps_survey, 4, member=member)
    follow_up = FollowUp.objects.get()
    client.force_login(support_user)
    address = reverse("admin:surveys_followup_resolve", args=[follow_up.pk])
    form = {"outcome": "apologised", "note": "Called", "goodwill_points": "200"}
    assert client.post(address, form).status_code == 302
    assert client.post(address, form).status_code == 302  # the double click
    assert PointsEntry.objects.filter(member=member).count() == 1
    member.refresh_from_db()
    assert member.points_balance == 200
    # The member page shows the follow-up and the answer.
    page = client.get(reverse("admin:members_member_change", args=[member.pk]))
    text = page.content.decode()
    assert 'id="member-surveys"' in text
    assert "Apologised, nothing to fix" in text


def test_bad_resolve_input_is_refused_with_a_message(client, nps_survey, member, support_user):
    answer(nps_survey, 4, member=member)
    follow_up = FollowUp.objects.get()
    client.force_login(support_user)
    address = reverse("admin:surveys_followup_resolve", args=[follow_up.pk])
    page = client.post(address, {"outcome": "", "goodwill_points": "-5"})
    assert page.status_code == 200
    assert page.context["form"].errors.keys() == {"outcome", "goodwill_points"}
    follow_up.refresh_from_db()
    assert follow_up.status == FollowUp.Status.OPEN
    assert PointsEntry.objects.count() == 0
