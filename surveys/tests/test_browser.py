"""A member answers on a phone; the manager sees the new NPS (headless Chromium)."""

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from surveys.models import FollowUp, Response
from surveys.tests.conftest import answer, invite

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "pw-for-tests-1"  # the root conftest's role_user default


def test_a_member_answers_on_a_phone_and_the_manager_sees_the_new_nps(
    browser, live_server, nps_survey, member, manager_user
):
    ARTIFACTS.mkdir(exist_ok=True)
    answer(nps_survey, 10)  # one earlier promoter: NPS 100 before
    member.language = "ru"
    member.save(update_fields=["language"])
    token = invite(nps_survey, member)

    phone = browser.new_context(viewport={"width": 375, "height": 667}, is_mobile=True,
                                has_touch=True, device_scale_factor=2)
    page: Page = phone.new_page()
    page.goto(f"{live_server.url}/survey/a/{token}/")
    expect(page.locator("h1")).to_contain_text("порекомендуете")
    # Every score fits the phone's width: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.screenshot(path=str(ARTIFACTS / "survey-phone-question.png"), full_page=True)
    page.locator("label.score", has_text="3").first.tap()
    page.fill("#id_comment", "Долго ждал в очереди <script>alert(1)</script>")
    page.locator("#send").tap()
    expect(page.locator("#thanks")).to_contain_text("Спасибо!")
    page.screenshot(path=str(ARTIFACTS / "survey-phone-thanks.png"), full_page=True)
    # The same link again: the answer is kept, nothing more is stored.
    page.goto(f"{live_server.url}/survey/a/{token}/")
    expect(page.locator("#link-problem")).to_have_attribute("data-code", "answered")
    phone.close()
    assert list(Response.objects.filter(member=member).values_list("score", flat=True)) == [3]
    assert FollowUp.objects.filter(member=member).count() == 1

    desk = browser.new_context(viewport={"width": 1400, "height": 900})
    page = desk.new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", manager_user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text(manager_user.username)
    page.goto(f"{live_server.url}/admin/surveys/survey/{nps_survey.pk}/results/")
    # One promoter and one detractor: (1 − 1) / 2 = 0.
    expect(page.locator("#nps-value")).to_have_text("0")
    expect(page.locator("#nps-responses")).to_have_text("2")
    expect(page.locator("#comments")).to_contain_text("<script>alert(1)</script>")
    page.screenshot(path=str(ARTIFACTS / "survey-results.png"), full_page=True)
    desk.close()
