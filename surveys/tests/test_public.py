"""The public answer page: a link answers once, in time, with a score in range; every
misuse gets its own page and stores nothing; comments are shown escaped everywhere."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from members.tests.factories import MemberFactory
from surveys import services
from surveys.models import FollowUp, Invitation, Response, Survey
from surveys.tests.conftest import invite

pytestmark = pytest.mark.django_db

SCRIPT = '<script>alert("x")</script><b>bold</b>'


def url(token: str) -> str:
    return reverse("surveys:answer", args=[token])


def stored() -> tuple:
    return (Response.objects.count(), FollowUp.objects.count(),
            Invitation.objects.filter(answered_at__isnull=False).count())


def test_a_member_answers_in_their_language_and_is_thanked(client, nps_survey, member):
    member.language = "ru"
    member.save(update_fields=["language"])
    token = invite(nps_survey, member)
    page = client.get(url(token))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Насколько вероятно, что вы порекомендуете нас другу или коллеге?" in text
    assert '<html lang="ru">' in text
    english = client.get(url(token) + "?lang=en").content.decode()
    assert "How likely are you to recommend us to a friend or colleague?" in english
    done = client.post(url(token), {"score": "9", "comment": "Отлично!"})
    assert done.status_code == 302
    thanks = client.get(done["Location"])
    assert "Спасибо!" in thanks.content.decode()
    response = Response.objects.get()
    assert (response.score, response.comment, response.language, response.source) == (
        9, "Отлично!", "ru", "link")
    assert Invitation.objects.get().answered_at is not None


def test_answering_twice_stores_the_first_answer_only(client, nps_survey, member):
    token = invite(nps_survey, member)
    client.post(url(token), {"score": "10"})
    again = client.post(url(token), {"score": "0", "comment": "changed my mind"})
    assert again.status_code == 409
    assert "You have already answered" in again.content.decode()
    assert list(Response.objects.values_list("score", flat=True)) == [10]
    assert FollowUp.objects.count() == 0
    assert client.get(url(token)).status_code == 409
    with pytest.raises(services.SurveyLinkError) as error:
        services.response_submit(token=token, data=services.AnswerInput(score=3))
    assert error.value.code == "answered"


def test_an_expired_link_gets_its_page_and_stores_nothing(client, nps_survey, member):
    token = invite(nps_survey, member, now=timezone.now() - timedelta(days=15))  # valid 14
    for page in (client.get(url(token)), client.post(url(token), {"score": "3"})):
        assert page.status_code == 410
        assert "This link has expired" in page.content.decode()
    assert stored() == (0, 0, 0)


def test_a_closed_survey_takes_no_answer(client, nps_survey, member):
    token = invite(nps_survey, member)
    nps_survey.ends_at = timezone.now() - timedelta(minutes=1)
    nps_survey.save()
    page = client.post(url(token), {"score": "3"})
    assert page.status_code == 410
    assert "This survey is closed" in page.content.decode()
    assert stored() == (0, 0, 0)


@pytest.mark.parametrize("forge", [
    lambda token: token[:-1] + ("0" if token[-1] != "0" else "1"),  # signature changed
    lambda token: "A" + token[1:],  # key changed, old signature
    lambda token: token.split(".")[0],  # no signature
    lambda token: "not-a-token",
    lambda token: "x" * 40 + "." + token.split(".")[1],
])
def test_a_forged_link_gets_its_page_and_stores_nothing(client, nps_survey, member, forge):
    token = invite(nps_survey, member)
    forged = forge(token)
    for page in (client.get(url(forged)), client.post(url(forged), {"score": "10"})):
        assert page.status_code == 404
        assert "This link is not valid" in page.content.decode()
    assert stored() == (0, 0, 0)


def test_the_token_is_not_stored(nps_survey, member):
    token = invite(nps_survey, member)
    invitation = Invitation.objects.get()
    signature = token.split(".")[1]
    assert signature not in str(list(Invitation.objects.values_list()))
    assert invitation.link_key == token.split(".")[0]


@pytest.mark.parametrize("score", ["11", "-1", "7.5", "abc", "", "1e1", " "])
def test_an_out_of_range_score_reshows_the_form_and_stores_nothing(
    client, nps_survey, member, score
):
    token = invite(nps_survey, member)
    page = client.post(url(token), {"score": score, "comment": "hello"})
    assert page.status_code == 400
    text = page.content.decode()
    assert "Please correct the answer below" in text
    assert ("Choose a score." in text) if not score.strip() else (
        "The score must be a whole number from 0 to 10." in text)
    assert stored() == (0, 0, 0)
    # The link still works afterwards.
    assert client.post(url(token), {"score": "8"}).status_code == 302


def test_csat_range_follows_the_survey_scale(client, csat_survey, member):
    token = invite(csat_survey, member)
    for bad in ("0", "6"):
        assert client.post(url(token), {"score": bad}).status_code == 400
    assert stored() == (0, 0, 0)
    assert client.post(url(token), {"score": "5"}).status_code == 302


def test_a_comment_with_html_is_stored_as_typed_and_shown_escaped_everywhere(
    client, admin_client, nps_survey, member
):
    token = invite(nps_survey, member)
    # First an invalid score: the form comes back with the comment, escaped.
    page = client.post(url(token), {"score": "12", "comment": SCRIPT})
    assert SCRIPT not in page.content.decode()
    assert "&lt;script&gt;" in page.content.decode()
    client.post(url(token), {"score": "2", "comment": SCRIPT})
    response = Response.objects.get()
    assert response.comment == SCRIPT
    follow_up = FollowUp.objects.get()
    pages = [
        reverse("admin:surveys_survey_results", args=[nps_survey.pk]),
        reverse("admin:surveys_response_changelist"),
        reverse("admin:surveys_response_change", args=[response.pk]),
        reverse("admin:surveys_followup_changelist"),
        reverse("admin:surveys_followup_change", args=[follow_up.pk]),
        reverse("admin:surveys_followup_resolve", args=[follow_up.pk]),
        reverse("admin:members_member_change", args=[member.pk]),
    ]
    for address in pages:
        text = admin_client.get(address).content.decode()
        assert SCRIPT not in text, address
        assert "&lt;script&gt;alert(" in text, address


def test_multi_question_survey_page_and_its_refusals(client, member):
    from surveys.models import Question

    survey = Survey.objects.create(code="multi", name="Multi", kind=Survey.Kind.MULTI,
                                   default_language="en")
    Question.objects.create(survey=survey, position=0, code="satisfaction", text_en="Happy?",
                            text_ru="Довольны?", scale_min=1, scale_max=10)
    Question.objects.create(survey=survey, position=1, code="visits", kind="choice",
                            text_en="Visits?", text_ru="Визиты?", choices_en="Often\nRarely",
                            choices_ru="Часто\nРедко")
    Question.objects.create(survey=survey, position=2, code="wish", kind="text",
                            text_en="Wish?", text_ru="Пожелания?", required=False)
    token = invite(survey, member)
    text = client.get(url(token) + "?lang=ru").content.decode()
    assert "Довольны?" in text and "Редко" in text
    bad = client.post(url(token), {"q_satisfaction": "11", "q_visits": "5"})
    assert bad.status_code == 400
    assert "from 1 to 10" in bad.content.decode()
    assert "Choose one of the options." in bad.content.decode()
    assert stored() == (0, 0, 0)
    assert client.post(url(token), {"q_satisfaction": "9", "q_visits": "1",
                                    "q_wish": "More coffee"}).status_code == 302
    answers = {a.question.code: (a.number, a.text)
               for a in Response.objects.get().answers.select_related("question")}
    assert answers == {"satisfaction": (9, ""), "visits": (1, "Rarely"),
                       "wish": (None, "More coffee")}


def test_inviting_twice_invites_once_and_sends_through_campaigns(
    nps_survey, member, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = services.invitations_create(survey_id=nps_survey.pk, member_ids=[member.pk])
    again = services.invitations_create(survey_id=nps_survey.pk,
                                        member_ids=[member.pk, MemberFactory().pk])
    assert (len(first.created_ids), first.skipped) == (1, 0)
    assert (len(again.created_ids), again.skipped) == (1, 1)
    assert Invitation.objects.count() == 2
    invitation = Invitation.objects.get(member=member)
    # Sending again (a task delivered twice) sends nothing more.
    services.invitation_send(invitation_id=invitation.pk)
    links = [m for m in mailoutbox if member.email in m.to]
    assert len(links) == 1
    assert services.invitation_url(invitation) in links[0].body
