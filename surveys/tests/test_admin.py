"""The survey screens: who may do what, fixed query counts, inviting, correcting."""

import pytest
from django.urls import reverse

from members.roles import ANALYST, MARKETING_MANAGER, OPERATIONS, SUPPORT
from members.tests.factories import MemberFactory
from surveys.models import FollowUp, Invitation, Response, Survey
from surveys.tests.conftest import answer

pytestmark = pytest.mark.django_db

ROLES = (MARKETING_MANAGER, SUPPORT, ANALYST, OPERATIONS)


@pytest.fixture
def users(role_user):
    return {role: role_user(role, role.lower().replace(" ", "-")) for role in ROLES}


@pytest.fixture
def follow_up(nps_survey, member):
    answer(nps_survey, 2, member=member, comment="Rude cashier, long queue")
    return FollowUp.objects.get()


@pytest.mark.parametrize("page, allowed", [
    # Operations reads surveys to find their codes for answer files.
    ("results", {MARKETING_MANAGER, SUPPORT, ANALYST, OPERATIONS}),
    ("invite", {MARKETING_MANAGER}),
    ("resolve", {SUPPORT}),
    ("survey_add", {MARKETING_MANAGER}),
    ("followup_list", {MARKETING_MANAGER, SUPPORT, ANALYST}),
    ("response_list", {MARKETING_MANAGER, SUPPORT, ANALYST}),
    ("invitation_list", {MARKETING_MANAGER, SUPPORT, ANALYST}),
])
def test_role_matrix(client, users, nps_survey, follow_up, page, allowed):
    addresses = {
        "results": reverse("admin:surveys_survey_results", args=[nps_survey.pk]),
        "invite": reverse("admin:surveys_survey_invite", args=[nps_survey.pk]),
        "resolve": reverse("admin:surveys_followup_resolve", args=[follow_up.pk]),
        "survey_add": reverse("admin:surveys_survey_add"),
        "followup_list": reverse("admin:surveys_followup_changelist"),
        "response_list": reverse("admin:surveys_response_changelist"),
        "invitation_list": reverse("admin:surveys_invitation_changelist"),
    }
    for role, user in users.items():
        client.force_login(user)
        status = client.get(addresses[page]).status_code
        assert (status == 200) == (role in allowed), (role, status)
        assert status in (200, 403), (role, status)


def test_analyst_cannot_change_a_follow_up_or_an_answer(client, users, follow_up):
    client.force_login(users[ANALYST])
    page = client.post(reverse("admin:surveys_followup_change", args=[follow_up.pk]),
                       {"status": "in_progress", "due_date": "2030-01-01", "notes": "x"})
    assert page.status_code in (200, 403)
    follow_up.refresh_from_db()
    assert follow_up.status == FollowUp.Status.OPEN and follow_up.notes == ""
    response = follow_up.response
    client.post(reverse("admin:surveys_response_change", args=[response.pk]),
                {"sentiment_override": "positive"})
    response.refresh_from_db()
    assert response.sentiment_override == ""


def test_support_takes_a_follow_up_and_notes_it(client, users, follow_up):
    user = users[SUPPORT]
    client.force_login(user)
    page = client.post(reverse("admin:surveys_followup_change", args=[follow_up.pk]), {
        "owner": user.pk, "status": "in_progress", "due_date": "05.12.2030",
        "notes": "Called, no answer"})
    assert page.status_code == 302, page.context["adminform"].form.errors
    follow_up.refresh_from_db()
    assert (follow_up.owner, follow_up.status, follow_up.notes) == (
        user, "in_progress", "Called, no answer")
    # "resolved" is not a choice here: only the Resolve page records an outcome.
    page = client.post(reverse("admin:surveys_followup_change", args=[follow_up.pk]), {
        "owner": user.pk, "status": "resolved", "due_date": "05.12.2030", "notes": ""})
    assert page.status_code == 200
    follow_up.refresh_from_db()
    assert follow_up.status == "in_progress"


def test_correcting_sentiment_and_themes(client, users, follow_up):
    response = follow_up.response
    assert response.sentiment_auto == "negative"
    assert response.theme_list == ["staff", "waiting"]
    client.force_login(users[SUPPORT])
    page = client.post(reverse("admin:surveys_response_change", args=[response.pk]), {
        "sentiment_override": "neutral", "theme_list": ["prices"]})
    assert page.status_code == 302
    response.refresh_from_db()
    assert (response.sentiment, response.themes) == ("neutral", "prices")
    assert list(response.theme_rows.values_list("theme", flat=True)) == ["prices"]


def test_manager_invites_by_card_numbers_and_unknown_cards_are_named(client, users, nps_survey):
    MemberFactory(card_number="2000000000101")
    MemberFactory(card_number="2000000000102")
    client.force_login(users[MARKETING_MANAGER])
    address = reverse("admin:surveys_survey_invite", args=[nps_survey.pk])
    page = client.post(address, {"cards": "2000000000101 9999", "channel": "email"})
    assert "No member has these card numbers: 9999." in page.content.decode()
    assert Invitation.objects.count() == 0
    page = client.post(address, {"cards": "2000000000101\n2000000000102", "channel": "email"})
    assert page.status_code == 302
    assert Invitation.objects.count() == 2
    client.post(address, {"cards": "2000000000101", "channel": "email"})
    assert Invitation.objects.count() == 2


def test_manager_invites_a_segment(client, users, nps_survey):
    from campaigns.models import Segment, SegmentMember

    members = [MemberFactory() for _ in range(3)]
    segment = Segment.objects.create(name="Three", kind=Segment.Kind.STATIC)
    SegmentMember.objects.bulk_create([SegmentMember(segment=segment, member=m)
                                       for m in members])
    client.force_login(users[MARKETING_MANAGER])
    page = client.post(reverse("admin:surveys_survey_invite", args=[nps_survey.pk]),
                       {"segment": segment.pk, "channel": "sms"})
    assert page.status_code == 302
    assert set(Invitation.objects.values_list("member_id", flat=True)) == {
        m.pk for m in members}


def test_results_page_runs_a_fixed_number_of_queries(
    client, admin_user, nps_survey, django_assert_max_num_queries
):
    from surveys import services

    client.force_login(admin_user)
    address = reverse("admin:surveys_survey_results", args=[nps_survey.pk])
    client.get(address)
    for score in (10, 9, 3):
        answer(nps_survey, score, comment="ok")
    services.responses_rollup_nightly()
    with django_assert_max_num_queries(40) as few:
        page = client.get(address + "?pivot=2026-01-01&days=30&grain=month")
    assert page.status_code == 200
    for score in range(11):
        answer(nps_survey, score, comment="more")
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(address + "?pivot=2026-01-01&days=30&grain=month")


def test_results_page_shows_the_new_nps(client, admin_user, nps_survey):
    for score in (10, 10, 9, 6):  # (3 − 1) / 4 = 50
        answer(nps_survey, score)
    client.force_login(admin_user)
    page = client.get(reverse("admin:surveys_survey_results", args=[nps_survey.pk]))
    text = page.content.decode()
    assert 'id="nps-value">50<' in text
    assert 'id="nps-responses">4<' in text


def test_queue_and_member_panel_run_a_fixed_number_of_queries(
    client, users, nps_survey, member, django_assert_max_num_queries
):
    client.force_login(users[SUPPORT])
    answer(nps_survey, 1, member=member)
    for address in (reverse("admin:surveys_followup_changelist"),
                    reverse("admin:surveys_response_changelist")):
        client.get(address)
        for _ in range(5):
            answer(nps_survey, 2)
        with django_assert_max_num_queries(25) as counted:
            assert client.get(address).status_code == 200
        for _ in range(5):
            answer(nps_survey, 3)
        with django_assert_max_num_queries(len(counted.captured_queries)):
            client.get(address)
    Response.objects.filter(member=member).count()


def test_survey_form_refuses_a_formula_with_unknown_codes(client, users):
    client.force_login(users[MARKETING_MANAGER])
    data = {
        "name": "Loyalty", "code": "loyalty", "kind": "multi", "csat_scale": 5,
        "touchpoint": "store", "default_language": "en", "starts_at_0": "01.01.2026",
        "starts_at_1": "00:00", "link_valid_days": 14,
        "loyalty_formula": "(satisfaction + price) / 2",
        "questions-TOTAL_FORMS": 1, "questions-INITIAL_FORMS": 0,
        "questions-0-position": 0, "questions-0-code": "satisfaction",
        "questions-0-kind": "scale", "questions-0-text_en": "Happy?",
        "questions-0-text_ru": "Довольны?", "questions-0-scale_min": 1,
        "questions-0-scale_max": 10, "questions-0-required": "on",
    }
    page = client.post(reverse("admin:surveys_survey_add"), data)
    assert page.status_code == 200
    assert "“price” is not the code of a scale question" in page.content.decode()
    assert not Survey.objects.filter(code="loyalty").exists()
    data["loyalty_formula"] = "(satisfaction + 1) / 2"
    page = client.post(reverse("admin:surveys_survey_add"), data)
    assert page.status_code == 302
    assert Survey.objects.get(code="loyalty").questions.count() == 1
