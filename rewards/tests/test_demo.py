"""The demo the first README command sets up is consistent and can be run twice."""

import pytest
from django.core.management import call_command

from members.models import Member
from members.selectors import ledger_mismatches
from rewards.models import MemberTier, Reward, Tier

pytestmark = pytest.mark.django_db


def test_demo_data_and_programme_are_consistent_and_idempotent():
    call_command("demo_seed", members=60, if_empty=True)
    call_command("demo_programme")
    members = Member.objects.count()
    assert members == 60
    assert Tier.objects.count() == 4 and Reward.objects.exists()
    assert MemberTier.objects.count() == Member.objects.filter(status="active").count()
    assert not list(ledger_mismatches())
    # Running the set-up again changes nothing.
    call_command("demo_seed", members=60, if_empty=True)
    call_command("demo_programme")
    assert Member.objects.count() == members and Tier.objects.count() == 4
