"""A manager in a real browser: builds a segment with a live count, launches a campaign,
sees its deliveries. Screenshots go to test-artifacts/."""

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from campaigns.models import Campaign, MessageDelivery
from campaigns.services import campaign_approve
from members.tests.browser import log_in
from members.tests.factories import MemberFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_manager_builds_segment_launches_campaign_and_sees_deliveries(
        page: Page, live_server, manager, second_manager):
    for n in range(3):
        MemberFactory(city="Kazan", email_consent=True, language="en", first_name=f"Kazan{n}")
    MemberFactory(city="Moscow", email_consent=True)
    ARTIFACTS.mkdir(exist_ok=True)
    log_in(page, live_server.url, manager.username)

    page.goto(f"{live_server.url}/admin/campaigns/segment/add/")
    page.fill("#id_name", "Kazan with e-mail")
    page.fill("#id_cities", "Kazan")
    page.select_option("#id_email_consent", "yes")
    expect(page.locator("#segment-count-float-value")).to_have_text("3")
    expect(page.locator("#segment-preview-body")).to_contain_text("Kazan2")
    page.screenshot(path=str(ARTIFACTS / "campaigns-segment-live-count.png"), full_page=True)
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("Kazan with e-mail")

    page.goto(f"{live_server.url}/admin/campaigns/campaign/add/")
    # The form shows only what the chosen kind gives members.
    page.select_option("#id_kind", "multiplier")
    expect(page.locator("#id_multiplier")).to_be_visible()
    expect(page.locator("#id_bonus_points")).to_be_hidden()
    expect(page.locator("#id_winners")).to_be_hidden()
    page.select_option("#id_kind", "offer")
    expect(page.locator("#id_reward")).to_be_visible()
    expect(page.locator("#id_offer_discount_percent")).to_be_visible()
    expect(page.locator("#id_multiplier")).to_be_hidden()
    page.screenshot(path=str(ARTIFACTS / "campaigns-form-offer.png"), full_page=True)
    page.fill("#id_name", "Kazan autumn news")
    page.select_option("#id_kind", "newsletter")
    expect(page.locator("fieldset:has(#id_bonus_points)")).to_be_hidden()
    page.select_option("#id_segment", label="Kazan with e-mail")
    page.fill("#id_control_percent", "0")
    page.fill("#id_variants-0-code", "A")
    page.fill("#id_variants-0-subject_en", "Hello {{ first_name }}")
    page.fill("#id_variants-0-body_en", "You have {{ balance }} points.")
    page.click("input[name=_continue]")
    page.click("#campaign-submit")
    expect(page.locator(".campaign-lifecycle")).to_contain_text("Waiting for approval")

    campaign = Campaign.objects.get(name="Kazan autumn news")
    campaign_approve(campaign_id=campaign.id, actor=second_manager)
    page.reload()
    page.click("#campaign-launch")
    expect(page.locator(".messagelist")).to_contain_text("Launched")
    expect(page.locator(".campaign-lifecycle")).to_contain_text("3 recipients")
    page.screenshot(path=str(ARTIFACTS / "campaigns-launched.png"), full_page=True)

    page.click("text=Messages sent")
    expect(page.locator("#result_list")).to_contain_text("Hello Kazan0")
    expect(page.locator("#result_list tbody tr")).to_have_count(3)
    page.screenshot(path=str(ARTIFACTS / "campaigns-deliveries.png"), full_page=True)
    assert MessageDelivery.objects.filter(campaign=campaign, status="sent").count() == 3
