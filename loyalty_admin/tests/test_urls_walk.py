"""Walk every URL of the project as an anonymous visitor and as each role.

The pages come from the URL resolver (:mod:`loyalty_admin.tests.urlwalk`), the ids in
their paths from a little demo data, and what each role may reach from its permissions:

- anonymous: the login page (a redirect to it), except the public pages;
- a page that needs a permission the user lacks never answers 200 (403, a redirect
  away, or 404 are all refusals), and a POST to it is refused as well;
- a change page the user may only view shows no Save button;
- a staff member without any permission reaches nothing but the home page and their
  own account pages;
- no page answers 500 to anyone; the superuser is refused nothing.

One database set-up and one client per role keep it fast enough for CI.
"""

import io
import logging
import time

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from loyalty_admin.tests.urlwalk import EVERY_STAFF, demo_data_load, pages
from members.models import PointsAdjustment
from members.roles import ANALYST, MARKETING_MANAGER, OPERATIONS, SUPPORT

ROLES = (MARKETING_MANAGER, SUPPORT, ANALYST, OPERATIONS)
REFUSED = {302, 403, 404, 405}
POST_REFUSED = {403, 404, 405}


@pytest.fixture
def walk_data(db, role_user, django_user_model):
    """Demo data, one pending adjustment, and a client per role (plus superuser, nobody)."""
    demo_data_load(io.StringIO())
    users = {role: role_user(role, f"walk-{role.lower().replace(' ', '-')}") for role in ROLES}
    users["nobody"] = role_user(None, "walk-nobody")
    users["superuser"] = django_user_model.objects.create_superuser(
        "walk-superuser", "root@example.com", "pw-for-tests-1"
    )
    from members.models import Member
    from members.services import member_status_change, points_adjust

    member = Member.objects.order_by("pk").first()
    points_adjust(
        member_id=member.pk, amount=999_999, reason="walk: waits for approval",
        actor=users[SUPPORT], idempotency_key="walk-pending",
    )
    assert PointsAdjustment.objects.filter(status=PointsAdjustment.Status.PENDING).exists()
    # Rows the demo commands do not make: a status change, a lock-out, a 2FA device.
    member_status_change(
        member_id=member.pk, status=Member.Status.BLOCKED, reason="walk", actor=users[SUPPORT]
    )
    member_status_change(
        member_id=member.pk, status=Member.Status.ACTIVE, reason="walk", actor=users[SUPPORT]
    )
    attempt = {"username": "locked-out", "ip_address": "10.0.0.9", "user_agent": "walk",
               "http_accept": "*/*", "path_info": "/admin/login/"}
    AccessAttempt.objects.create(**attempt, get_data="", post_data="", failures_since_start=5)
    AccessFailureLog.objects.create(**attempt, locked_out=True)
    TOTPDevice.objects.create(user=users["superuser"], name="walk", confirmed=False)
    clients = {}
    for key, user in users.items():
        clients[key] = Client(raise_request_exception=False)
        clients[key].force_login(user)
    clients["anonymous"] = Client(raise_request_exception=False)
    return users, clients


def _may(user, perms) -> bool:
    return user.is_superuser or any(user.has_perm(perm) for perm in perms)


def test_every_url_answers_each_role_as_the_role_table_says(walk_data):
    users, clients = walk_data
    # Each refusal logs a warning with its traceback: hundreds of them cost seconds.
    logging.getLogger("django.request").setLevel(logging.ERROR)
    walk, unfilled, uncovered = pages()
    assert not unfilled, (
        "These URLs have a path parameter the walk cannot fill: add a value to "
        f"urlwalk.PARAM_VALUES or data to the demo commands: {unfilled}"
    )
    assert len(walk) > 100, "the resolver walk found suspiciously few pages"
    problems: list[str] = []
    timings: dict[str, float] = {}
    started = time.monotonic()
    for page in walk:
        anonymous = clients["anonymous"].get(page.url)
        if anonymous.status_code >= 500:
            problems.append(f"anonymous {page.url}: {anonymous.status_code}")
        elif not page.public and not (
            anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
        ):
            problems.append(
                f"anonymous {page.url} ({page.name}): {anonymous.status_code}, "
                "expected a redirect to the login page"
            )
        if page.public:
            continue
        for key, user in users.items():
            client = clients[key]
            tick = time.monotonic()
            response = client.get(page.url)
            timings[page.name] = timings.get(page.name, 0) + time.monotonic() - tick
            status = response.status_code
            who = f"{key} GET {page.url} ({page.name})"
            if status >= 500:
                problems.append(f"{who}: {status}")
                continue
            if user.is_superuser:
                # Add and delete are refused to everyone where rows are never made or
                # removed by hand (the ledger, logs); other pages open for the superuser.
                if status == 403 and page.suffix not in {"add", "delete"} and (
                    page.name != "admin:autocomplete"  # needs its query parameters
                ):
                    problems.append(f"{who}: 403 for the superuser")
                continue
            if page.perms is None or not page.perms:
                if key == "nobody" and page.name not in EVERY_STAFF and status == 200:
                    problems.append(f"{who}: 200 for a staff member without permissions")
                continue
            allowed = _may(user, page.perms)
            if not allowed and status not in REFUSED:
                problems.append(f"{who}: {status}, needs one of {page.perms}")
            if (allowed and status == 200 and page.suffix == "change"
                    and page.post_perms and not _may(user, page.post_perms)
                    and b'name="_save"' in response.content):
                problems.append(f"{who}: a Save button for a user who may only view")
            if page.post_perms and not _may(user, page.post_perms):
                posted = client.post(page.url, {})
                if posted.status_code not in POST_REFUSED:
                    problems.append(
                        f"{key} POST {page.url} ({page.name}): {posted.status_code}, "
                        f"needs one of {page.post_perms}"
                    )
    elapsed = time.monotonic() - started
    print(f"walked {len(walk)} URLs as {len(clients)} visitors in {elapsed:.1f} s")
    slowest = sorted(timings.items(), key=lambda item: -item[1])[:5]
    print("slowest pages (all visitors):", ", ".join(f"{n} {t:.1f} s" for n, t in slowest))
    if uncovered:
        print("walked with a made-up id (no row in the demo data):", *uncovered, sep="\n  ")
    assert not problems, "\n".join(problems)
