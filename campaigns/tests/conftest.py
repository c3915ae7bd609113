"""Fixtures of the campaigns tests: roles with this app's grants, members with purchases."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from members.services import purchase_create
from members.tests.factories import MemberFactory, StoreFactory


@pytest.fixture
def campaign_roles(roles_present):
    """The role groups with every app's grants, this one's included (the root fixture)."""


@pytest.fixture
def manager(role_user, campaign_roles):
    return role_user("Marketing manager", username="manager-one")


@pytest.fixture
def second_manager(role_user, campaign_roles):
    return role_user("Marketing manager", username="manager-two")


@pytest.fixture
def store(db):
    return StoreFactory(code="MSK-1", name="Moscow 1", city="Moscow")


@pytest.fixture
def buy(store):
    """Record a purchase for a member ``days`` ago (no points: campaigns need none)."""
    counter = {"n": 0}

    def make(member, total, days_ago: float, *, now=None, lines=()):
        counter["n"] += 1
        now = now or timezone.now()
        return purchase_create(
            store_id=store.id, receipt_number=f"R{counter['n']}", total=Decimal(total),
            purchased_at=now - timedelta(days=days_ago), member_id=member.id, lines=lines,
        ).purchase

    return make


@pytest.fixture
def consenting_member(db):
    return MemberFactory(first_name="Anna", email="anna@example.com", email_consent=True,
                         sms_consent=True, phone="79001112233", language="en")


@pytest.fixture(autouse=True)
def fresh_frequency_cap():
    """The weekly cap is cached for 30 s per process; each test reads its own setting."""
    from campaigns.messaging import _cap_cache

    _cap_cache.clear()
    yield
    _cap_cache.clear()
