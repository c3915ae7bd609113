"""Support staff in a real browser (headless Chromium): find a member, adjust, approve.

Run with the rest (``bin/test.sh``) or alone with ``bin/test.sh -m browser``; each test
leaves a full-page screenshot in ``test-artifacts/`` to look at.
"""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from members.models import PointsAdjustment
from members.tests.browser import log_in
from members.tests.factories import MemberFactory, points_give

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def card_member(db):
    """Ivan Petrov, phone stored as 79123456789, with 1,000 points."""
    member = MemberFactory(
        first_name="Ivan", last_name="Petrov", phone="79123456789",
        email="ivan.petrov@example.com", card_number="4000123412341234",
    )
    points_give(member, 1000, key="browser-opening")
    return member


def find_member_by_phone(page: Page, base_url: str, typed_phone: str, card_number: str):
    page.goto(f"{base_url}/admin/members/member/")
    page.fill("#searchbar", typed_phone)
    page.press("#searchbar", "Enter")
    results = page.locator("#result_list tbody tr")
    expect(results).to_have_count(1)
    results.get_by_role("link", name=card_number).click()
    expect(page.locator("#member-balance")).to_be_visible()


def adjust(page: Page, amount: str, reason: str) -> None:
    page.click("#adjust-points")
    page.fill("#id_amount", amount)
    page.fill("#id_reason", reason)
    page.click("#adjust-submit")


def test_support_finds_member_by_phone_and_adjusts_points(
    page: Page, live_server, support_user, card_member
):
    log_in(page, live_server.url, support_user.username)
    find_member_by_phone(page, live_server.url, "8 (912) 345 67 89", card_member.card_number)
    expect(page.locator("#member-balance")).to_have_text("1,000")

    adjust(page, "250", "Goodwill for a late delivery, ticket 4512")

    expect(page).to_have_url(re.compile(rf"/admin/members/member/{card_member.pk}/change/$"))
    expect(page.locator("#member-balance")).to_have_text("1,250")
    expect(page.locator(".messagelist .success")).to_contain_text("New balance: 1,250")
    expect(page.locator("#ledger")).to_contain_text("Goodwill for a late delivery, ticket 4512")
    page.screenshot(path=str(ARTIFACTS / "browser-support-adjust.png"), full_page=True)
    card_member.refresh_from_db()
    assert card_member.points_balance == 1250


def test_large_adjustment_waits_until_another_support_user_approves_it(
    page: Page, browser, live_server, support_user, second_support_user, card_member,
    threshold_500,
):
    log_in(page, live_server.url, support_user.username)
    find_member_by_phone(page, live_server.url, "+7 912 345-67-89", card_member.card_number)
    adjust(page, "800", "Lost receipt, ticket 9001")

    pending = page.locator(".pending-panel")
    expect(pending).to_be_visible()
    expect(pending).to_contain_text("Lost receipt, ticket 9001")
    expect(pending).to_contain_text("Needs another person's approval")
    expect(page.locator(".messagelist .warning")).to_contain_text("approval threshold")
    expect(page.locator("#member-balance")).to_have_text("1,000")
    page.screenshot(path=str(ARTIFACTS / "browser-approval-pending.png"), full_page=True)

    checker_context = browser.new_context()
    try:
        checker = checker_context.new_page()
        log_in(checker, live_server.url, second_support_user.username)
        checker.goto(f"{live_server.url}/admin/members/member/{card_member.pk}/change/")
        checker.locator(".pending-panel").get_by_role("link", name="Review").click()
        checker.fill("#id_note", "Receipt found in the POS log")
        checker.click("input[name=approve]")

        expect(checker.locator("#member-balance")).to_have_text("1,800")
        expect(checker.locator(".pending-panel")).to_have_count(0)
        expect(checker.locator("#ledger")).to_contain_text("Lost receipt, ticket 9001")
        checker.screenshot(path=str(ARTIFACTS / "browser-approval.png"), full_page=True)
    finally:
        checker_context.close()

    adjustment = PointsAdjustment.objects.get()
    assert adjustment.status == PointsAdjustment.Status.APPLIED
    assert (adjustment.requested_by, adjustment.decided_by) == (
        support_user, second_support_user
    )
    card_member.refresh_from_db()
    assert card_member.points_balance == 1800
