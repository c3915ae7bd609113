"""Fixtures shared by every app's tests: users per role, a browser on Debian's Chromium."""

import os

import pytest

# Playwright's sync API runs an event loop in the test thread; the ORM calls made by
# fixtures beside it are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(autouse=True)
def english_by_default():
    """Start every test in English: a request in Russian must not leak into the next test."""
    from django.utils import translation

    translation.activate("en")
    yield
    translation.activate("en")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Launch Debian's Chromium: Playwright's own browser download is not possible here."""
    return {
        **browser_type_launch_args,
        "executable_path": os.environ.get("CHROMIUM", "/usr/bin/chromium"),
        "args": CHROMIUM_ARGS,
    }


@pytest.fixture
def role_user(db, django_user_model):
    """Return a factory of staff users holding exactly one role's group."""
    from django.contrib.auth.models import Group

    def make(role: str | None, username: str | None = None, password: str = "pw-for-tests-1"):
        user = django_user_model.objects.create_user(
            username=username or f"{(role or 'staff').lower().replace(' ', '-')}-user",
            password=password, is_staff=True,
        )
        if role:
            user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def support_user(role_user):
    from members.roles import SUPPORT

    return role_user(SUPPORT, "support-1")


@pytest.fixture
def second_support_user(role_user):
    from members.roles import SUPPORT

    return role_user(SUPPORT, "support-2")


@pytest.fixture
def manager_user(role_user):
    from members.roles import MARKETING_MANAGER

    return role_user(MARKETING_MANAGER, "manager-1")


@pytest.fixture
def analyst_user(role_user):
    from members.roles import ANALYST

    return role_user(ANALYST, "analyst-1")
