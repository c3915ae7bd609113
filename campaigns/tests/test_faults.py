"""A campaign send cut by a PostgreSQL restart: the rerun sends the rest, no one twice.

Sending commits each member's delivery row (*sending*) before the message leaves and marks
it *sent* after, so a crash between two members leaves a clean point to resume from.
"""

from collections import Counter
from decimal import Decimal
from unittest import mock

import pytest
from django.core import mail
from django.db import DatabaseError, connections

from campaigns.models import Campaign, CampaignRecipient, MessageDelivery
from campaigns.services import campaign_approve, campaign_launch, campaign_submit
from campaigns.tasks import campaign_send
from campaigns.tests.factories import campaign_make, segment_make
from members.models import PointsEntry
from members.selectors import ledger_mismatches
from members.tests.factories import MemberFactory
from members.tests.faults import faults_marker, inserts_into, pg_datadir, pg_restarted_at

__all__ = ["pg_datadir"]  # the fixture, imported for the test below

pytestmark = [faults_marker(), pytest.mark.django_db(transaction=True)]


def test_bonus_campaign_send_cut_by_a_restart_resumes_and_sends_and_posts_each_once(
    pg_datadir, manager, second_manager, settings,
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    members = [MemberFactory(email_consent=True, language="en") for _ in range(30)]
    campaign = campaign_make(created_by=manager, segment=segment_make(), control_percent=0,
                             kind=Campaign.Kind.BONUS_POINTS, bonus_points=25,
                             budget_points=Decimal("100000"))
    campaign_submit(campaign_id=campaign.id, actor=manager)
    campaign_approve(campaign_id=campaign.id, actor=second_manager)
    # Launched, its send task not run yet (no outer transaction here: on_commit is at once).
    with mock.patch.object(campaign_send, "delay"):
        campaign_launch(campaign_id=campaign.id, actor=second_manager)

    # The server goes down just before the 12th member's delivery row is written.
    with pg_restarted_at(pg_datadir, inserts_into("campaigns_messagedelivery"), nth=12):
        with pytest.raises(DatabaseError):
            campaign_send(campaign.id)
    connections.close_all()
    assert len(mail.outbox) == 11
    assert not MessageDelivery.objects.filter(status=MessageDelivery.Status.SENDING).exists()

    campaign_send(campaign.id)  # the task delivered again
    campaign_send(campaign.id)  # and once more, for good measure

    addresses = Counter(message.to[0] for message in mail.outbox)
    assert sorted(addresses) == sorted(member.email for member in members)
    assert set(addresses.values()) == {1}
    assert not CampaignRecipient.objects.filter(
        campaign=campaign, status=CampaignRecipient.Status.PENDING).exists()
    bonuses = PointsEntry.objects.filter(kind=PointsEntry.Kind.CAMPAIGN)
    assert bonuses.count() == 30 and {entry.amount for entry in bonuses} == {25}
    assert list(ledger_mismatches()) == []
