"""Logging in: lock-out after failed attempts, session expiry, two-factor, passwords, headers."""

import time

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from loyalty_admin.security.middleware import SESSION_SEEN, SESSION_STARTED

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-1"  # the root conftest's role_user default
LOGIN = "/admin/login/"


def log_in(client: Client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(
        LOGIN, {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
    )


# ------------------------------------------------------------------ lock-out


def test_five_wrong_passwords_lock_the_login_out_with_a_message_on_the_login_page(
    support_user, manager_user, settings
):
    assert settings.AXES_FAILURE_LIMIT == 5
    client = Client()
    for attempt in range(4):
        wrong = log_in(client, "support-1", f"wrong-{attempt}")
        assert wrong.status_code == 200
        assert b"Please enter the correct username and password" in wrong.content
    locked = log_in(client, "support-1", "wrong-5")
    assert locked.status_code == 429
    assert b'id="login-locked"' in locked.content
    assert b"Too many failed logins: logging in is locked for 30 minutes" in locked.content
    assert b'id="login-form"' in locked.content

    # Now even the right password is refused, from this address or another one...
    assert log_in(client, "support-1", PASSWORD).status_code == 429
    assert log_in(Client(), "support-1", PASSWORD, address="10.9.9.9").status_code == 429
    # ...while a colleague behind the same address still logs in.
    assert log_in(Client(), "manager-1", PASSWORD).status_code == 302


def test_twenty_failures_from_one_address_lock_that_address_out_for_every_user(
    support_user, settings
):
    assert settings.LOGIN_FAILURE_LIMIT_ADDRESS == 20
    client = Client()
    for attempt in range(19):
        assert log_in(client, f"guess-{attempt}", "x", address="10.6.6.6").status_code == 200
    assert log_in(client, "guess-last", "x", address="10.6.6.6").status_code == 429
    assert log_in(Client(), "support-1", PASSWORD, address="10.6.6.6").status_code == 429
    assert log_in(Client(), "support-1", PASSWORD, address="10.7.7.7").status_code == 302


def test_support_staff_lift_a_lock_out_in_the_admin(support_user, second_support_user):
    for attempt in range(5):
        log_in(Client(), "support-2", f"wrong-{attempt}")
    assert log_in(Client(), "support-2", PASSWORD).status_code == 429

    colleague = Client()
    colleague.force_login(support_user)
    listing = colleague.get(reverse("admin:axes_accessattempt_changelist"))
    assert listing.status_code == 200
    assert b"support-2" in listing.content
    attempt = AccessAttempt.objects.get(username="support-2")
    delete_url = reverse("admin:axes_accessattempt_delete", args=[attempt.pk])
    assert colleague.post(delete_url, {"post": "yes"}).status_code == 302

    assert log_in(Client(), "support-2", PASSWORD).status_code == 302


def test_a_successful_login_clears_the_earlier_failures(support_user):
    client = Client()
    for attempt in range(4):
        log_in(client, "support-1", f"wrong-{attempt}")
    assert log_in(client, "support-1", PASSWORD).status_code == 302
    for attempt in range(4):
        assert log_in(Client(), "support-1", f"again-{attempt}").status_code == 200


# ------------------------------------------------------------------ sessions


def _aged(client: Client, **seconds_ago: int) -> None:
    session = client.session
    now = int(time.time())
    session[SESSION_STARTED] = now - seconds_ago.get("started", 0)
    session[SESSION_SEEN] = now - seconds_ago.get("seen", 0)
    session.save()


def test_a_session_idle_longer_than_the_idle_timeout_ends_with_a_message(
    client, support_user, settings
):
    settings.SESSION_IDLE_TIMEOUT = 1800
    assert log_in(client, "support-1", PASSWORD).status_code == 302
    _aged(client, started=1700, seen=1700)
    assert client.get("/admin/").status_code == 200
    _aged(client, started=3700, seen=1801)
    expired = client.get("/admin/members/member/")
    assert expired.status_code == 302
    assert expired["Location"] == "/admin/login/?next=/admin/members/member/"
    page = client.get(expired["Location"])
    assert b"Your session expired. Please log in again." in page.content
    assert client.get("/admin/").status_code == 302


def test_a_busy_session_still_ends_at_the_absolute_timeout(client, support_user, settings):
    settings.SESSION_ABSOLUTE_TIMEOUT = 36000
    client.force_login(support_user)
    _aged(client, started=36001, seen=5)
    assert client.get("/admin/").status_code == 302


# ------------------------------------------------------------------ two-factor


def test_a_staff_member_turns_two_factor_on_with_a_code_from_the_app(client, support_user):
    client.force_login(support_user)
    url = reverse("admin:two_factor")
    page = client.get(url)
    assert page.status_code == 200
    assert b"Two-factor authentication is off." in page.content
    assert b"<svg" in page.content  # the QR code, drawn on the server
    device = TOTPDevice.objects.get(user=support_user, confirmed=False)
    assert page.context["secret"]

    wrong = client.post(url, {"action": "enable", "code": "000000"})
    assert b"That code is not right" in wrong.content
    device.refresh_from_db()
    device.throttle_reset()  # a wrong code makes the next try wait a second, then two...
    done = client.post(url, {"action": "enable", "code": f"{totp(device.bin_key):06d}"})
    assert done.status_code == 302
    device.refresh_from_db()
    assert device.confirmed
    assert b"Two-factor authentication is on." in client.get(url).content

    assert client.post(url, {"action": "disable", "password": "nope"}).status_code == 200
    assert TOTPDevice.objects.filter(user=support_user).exists()
    client.post(url, {"action": "disable", "password": PASSWORD})
    assert not TOTPDevice.objects.filter(user=support_user).exists()


def test_with_two_factor_on_the_login_asks_for_the_code_and_counts_wrong_codes(support_user):
    device = TOTPDevice.objects.create(user=support_user, name="phone", confirmed=True)
    client = Client()
    step_one = log_in(client, "support-1", PASSWORD)
    assert step_one.status_code == 302
    assert step_one["Location"].startswith(reverse("admin:login_code"))
    # Not logged in yet: the password alone opens nothing.
    assert client.get("/admin/").status_code == 302

    code_page = client.get(step_one["Location"])
    assert b"six-digit" in code_page.content
    wrong = client.post(step_one["Location"], {"code": "000000"}, REMOTE_ADDR="10.0.0.1")
    assert b"That code is not right" in wrong.content
    assert AccessAttempt.objects.get(username="support-1").failures_since_start == 1
    device.refresh_from_db()
    device.throttle_reset()  # a wrong code makes the next try wait a second, then two...

    right = client.post(
        step_one["Location"], {"code": f"{totp(device.bin_key):06d}", "next": "/admin/"}
    )
    assert right.status_code == 302 and right["Location"] == "/admin/"
    home = client.get("/admin/")
    assert home.status_code == 200
    assert home.wsgi_request.user.is_verified()


def test_without_a_device_the_login_is_one_step(client, support_user):
    assert log_in(client, "support-1", PASSWORD)["Location"] == "/admin/"


def test_superusers_can_be_required_to_use_two_factor(client, django_user_model, settings):
    settings.TWO_FACTOR_REQUIRED_FOR_SUPERUSERS = True
    root = django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    client.force_login(root)
    response = client.get("/admin/members/member/")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:two_factor")
    page = client.get(reverse("admin:two_factor"))
    assert b"Superusers must use two-factor authentication" in page.content
    device = TOTPDevice.objects.get(user=root)
    client.post(reverse("admin:two_factor"),
                {"action": "enable", "code": f"{totp(device.bin_key):06d}"})
    assert client.get("/admin/members/member/").status_code == 200


# ------------------------------------------------------------------ passwords and headers


@pytest.mark.parametrize("password", ["12345678901", "password123", "short-1", "support-1x"])
def test_weak_passwords_are_refused(password, support_user):
    with pytest.raises(ValidationError):
        validate_password(password, user=support_user)


def test_a_long_unusual_password_is_accepted(support_user):
    validate_password("amber-falcon-harbour-42", user=support_user)


def test_pages_carry_a_content_security_policy_and_the_other_security_headers(
    client, support_user
):
    client.force_login(support_user)
    response = client.get("/admin/members/member/")
    policy = response["Content-Security-Policy"]
    directives = dict(
        (part.strip().split(" ", 1) + [""])[:2] for part in policy.split(";") if part.strip()
    )
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"  # no inline script, no eval, no CDN
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    login = Client().get(LOGIN)
    assert "Content-Security-Policy" in login
