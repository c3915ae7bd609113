"""Fixtures of the members app's tests: roles that survive a flush, settings, members."""

import importlib

import pytest

from members.selectors import programme_settings_get
from members.tests.factories import MemberFactory, points_give

# The data migration that creates the roles: the one source of what each role may do.
ROLE_GRANTS = importlib.import_module("members.migrations.0003_roles").GRANTS


@pytest.fixture
def roles_present(db):
    """Make sure the role groups hold the members app's permissions.

    A ``transaction=True`` test (browser, concurrency) ends with a flush that empties the
    groups the data migration created; Django recreates the permissions but not the groups.
    """
    from django.contrib.auth.models import Group, Permission

    for role, names in ROLE_GRANTS.items():
        group, _created = Group.objects.get_or_create(name=role)
        for name in names:
            app_label, codename = name.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


@pytest.fixture
def role_user(role_user, roles_present):
    """The root ``role_user`` factory, with the groups ensured first."""
    return role_user


@pytest.fixture
def threshold_500(db):
    """Adjustments above 500 points wait for a second person."""
    settings_row = programme_settings_get()
    settings_row.adjustment_approval_threshold = 500
    settings_row.save()
    return settings_row


@pytest.fixture
def member(db):
    """An active member with 100 points, posted through the ledger service."""
    member = MemberFactory(
        first_name="Ivan", last_name="Petrov", phone="79123456789",
        email="ivan.petrov@example.com", card_number="4000123412341234",
    )
    points_give(member, 100, key=f"opening:{member.pk}")
    return member
