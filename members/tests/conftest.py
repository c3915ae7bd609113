"""Fixtures of the members app's tests: settings and members."""

import pytest

from members.selectors import programme_settings_get
from members.tests.factories import MemberFactory, points_give


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
