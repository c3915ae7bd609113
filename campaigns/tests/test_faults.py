"""A campaign send cut by a PostgreSQL restart or a killed worker: the rest is sent, no one
twice.

Sending commits each member's delivery row (*sending*) before the message leaves and marks
it *sent* after, so a crash between two members leaves a clean point to resume from.
"""

import time
from collections import Counter
from decimal import Decimal
from unittest import mock

import pytest
from django.core import mail
from django.db import DatabaseError, connections
from django.db.models import Count

from campaigns.models import Campaign, CampaignRecipient, CampaignSettings, MessageDelivery
from campaigns.services import campaign_approve, campaign_launch, campaign_submit
from campaigns.tasks import campaign_send
from campaigns.tests.factories import campaign_make, segment_make
from members.models import PointsEntry
from members.selectors import ledger_mismatches
from members.tests.factories import MemberFactory
from members.tests.faults import (
    broker,
    faults_marker,
    inserts_into,
    pg_datadir,
    pg_restarted_at,
    wait_for,
    worker_start,
    worker_stop,
)

__all__ = ["broker", "pg_datadir"]  # the fixtures, imported for the tests below

APP = "members.tests.faults_app"

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


def test_bonus_campaign_send_whose_worker_is_killed_is_finished_by_the_next_worker_once(
    broker, manager, second_manager,
):
    """100 recipients at 25 messages a second; the worker is SIGKILLed part-way through."""
    client, queue, env = broker
    CampaignSettings.objects.update_or_create(id=1, defaults={"send_rate_per_second": 25})
    for _ in range(100):
        MemberFactory(email_consent=True, language="en")
    campaign = campaign_make(created_by=manager, segment=segment_make(), control_percent=0,
                             kind=Campaign.Kind.BONUS_POINTS, bonus_points=25)
    campaign_submit(campaign_id=campaign.id, actor=manager)
    campaign_approve(campaign_id=campaign.id, actor=second_manager)
    with mock.patch.object(campaign_send, "delay"):
        campaign_launch(campaign_id=campaign.id, actor=second_manager)
    deliveries = MessageDelivery.objects.filter(campaign=campaign)

    first = worker_start(env, app=APP, queue=queue)
    try:
        client.send_task("campaigns.tasks.campaign_send", args=[campaign.id], queue=queue)
        wait_for(lambda: deliveries.count() >= 10, timeout=90,
                 message="the first worker never began sending")
    finally:
        first.kill()  # SIGKILL: no clean-up, as a machine that dies
        first.wait(timeout=30)
    assert deliveries.count() < 100, "killed in the middle"

    second = worker_start(env, app=APP, queue=queue)
    try:
        # No one sends it again: the broker returns the unacknowledged message.
        wait_for(lambda: not CampaignRecipient.objects.filter(
            campaign=campaign, status=CampaignRecipient.Status.PENDING).exists(),
            timeout=90, every=0.2, message="the message never came back to the next worker")
        time.sleep(1)  # a duplicate delivery would show up here
    finally:
        worker_stop(second)
    per_member = deliveries.values("member_id").annotate(n=Count("id"))
    assert len(per_member) == 100 and {row["n"] for row in per_member} == {1}
    # At most the one message in flight at the kill stays "sending" (sent at most once).
    assert deliveries.exclude(status=MessageDelivery.Status.SENT).count() <= 1
    bonuses = PointsEntry.objects.filter(kind=PointsEntry.Kind.CAMPAIGN)
    assert 99 <= bonuses.count() <= 100  # the one in flight at the kill may have none
    assert bonuses.values("member_id").distinct().count() == bonuses.count()
    assert list(ledger_mismatches()) == []
