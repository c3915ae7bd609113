"""In a real browser: the pages work under the Content-Security-Policy, and 2FA logins.

Chromium reports every blocked script, style or image on its console; the walk through
the busiest pages must produce none. Screenshots go to ``test-artifacts/``.
"""

import re
from pathlib import Path

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from members.tests.factories import MemberFactory, points_give

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "pw-for-tests-1"


def csp_violations(page: Page) -> list[str]:
    found: list[str] = []
    page.on("console", lambda message: found.append(message.text)
            if "Content Security Policy" in message.text else None)
    return found


def test_the_busiest_pages_run_under_the_content_security_policy(
    page: Page, live_server, django_user_model, roles_present
):
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    member = MemberFactory(first_name="Ivan", last_name="Petrov")
    points_give(member, 300, key="browser-csp")
    violations = csp_violations(page)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text("root")
    for path in (
        "/admin/", "/admin/members/member/", f"/admin/members/member/{member.pk}/change/",
        f"/admin/members/member/{member.pk}/adjust/", "/admin/rewards/tier/add/",
        "/admin/auth/user/add/", "/admin/members/configchange/", "/admin/account/two-factor/",
    ):
        page.goto(f"{live_server.url}{path}")
        expect(page.locator("#content")).to_be_visible()
    # The admin's own scripts ran: the date widget's calendar link is drawn by JavaScript.
    page.goto(f"{live_server.url}/admin/members/member/{member.pk}/change/")
    expect(page.locator(".datetimeshortcuts").first).to_be_visible()
    page.goto(f"{live_server.url}/admin/members/configchange/")
    page.screenshot(path=str(ARTIFACTS / "security-audit-log.png"), full_page=True)
    assert violations == []


def test_a_two_factor_login_in_the_browser(page: Page, live_server, support_user):
    device = TOTPDevice.objects.create(user=support_user, name="phone", confirmed=True)
    violations = csp_violations(page)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", support_user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(re.compile(r"/admin/login/code/"))
    page.screenshot(path=str(ARTIFACTS / "security-login-code.png"), full_page=True)
    page.fill("#id_code", f"{totp(device.bin_key):06d}")
    page.click("#login-code-submit")
    expect(page.locator("#user-tools")).to_contain_text(support_user.username)
    page.goto(f"{live_server.url}/admin/account/two-factor/")
    expect(page.locator("#two-factor-status")).to_contain_text("is on")
    assert violations == []


def test_the_lockout_message_on_the_login_page(page: Page, live_server, support_user):
    page.goto(f"{live_server.url}/admin/login/")
    for attempt in range(5):
        page.fill("#id_username", support_user.username)
        page.fill("#id_password", f"wrong-{attempt}")
        page.click("input[type=submit]")
    expect(page.locator("#login-locked")).to_contain_text("Too many failed logins")
    page.screenshot(path=str(ARTIFACTS / "security-lockout.png"), full_page=True)


def test_the_two_factor_set_up_page(page: Page, live_server, support_user):
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", support_user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/account/two-factor/")
    expect(page.locator("#two-factor-qr svg")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "security-two-factor-setup.png"), full_page=True)
