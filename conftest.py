"""Fixtures shared by every app's tests: users per role, a browser on Debian's Chromium."""

import importlib
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


# The data migrations that create the roles: the one source of what each role may do.
ROLE_MIGRATIONS = (
    "members.migrations.0003_roles",
    "rewards.migrations.0002_roles",
    "rewards.migrations.0003_operations_role",
    "members.migrations.0009_configchange",
    "campaigns.migrations.0002_roles",
    "surveys.migrations.0002_roles",
    "loyalty_admin.migrations.0002_roles",
)


@pytest.fixture
def roles_present(db):
    """Make sure the role groups hold their permissions.

    A ``transaction=True`` test (browser, concurrency) ends with a flush that empties the
    groups the data migrations created; Django recreates the permissions but not the
    groups, so tests that need a role restore them from the migrations' own grants.
    """
    from django.contrib.auth.models import Group, Permission

    grants: dict[str, set[str]] = {}
    for module in ROLE_MIGRATIONS:
        for role, names in importlib.import_module(module).GRANTS.items():
            grants.setdefault(role, set()).update(names)
    by_name = {
        f"{app_label}.{codename}": pk
        for pk, app_label, codename in Permission.objects.values_list(
            "pk", "content_type__app_label", "codename"
        )
    }
    for role, names in grants.items():
        group, _created = Group.objects.get_or_create(name=role)
        missing = sorted(name for name in names if name not in by_name)
        assert not missing, f"{role}: no such permissions {missing}"
        wanted = {by_name[name] for name in names}
        held = set(group.permissions.values_list("pk", flat=True))
        if wanted - held:
            # One add per role: the audit log records a group's permissions once, not per row.
            group.permissions.add(*(wanted - held))


@pytest.fixture
def role_user(db, django_user_model, roles_present):
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
