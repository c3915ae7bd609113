"""Triggered kinds from the periodic task: welcome, birthday, reactivation, expiring."""

from datetime import date, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from campaigns.models import Campaign, CampaignRecipient
from campaigns.services import campaign_approve, campaign_submit, campaigns_tick
from campaigns.tasks import campaign_send
from campaigns.tests.factories import campaign_make
from members.tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


def running(kind, manager, second_manager, **kwargs):
    campaign = campaign_make(created_by=manager, kind=kind, control_percent=0,
                             starts_at=timezone.now() - timedelta(days=1), **kwargs)
    campaign_submit(campaign_id=campaign.id, actor=manager)
    campaign_approve(campaign_id=campaign.id, actor=second_manager)
    return campaign


def test_tick_launches_and_welcomes_new_members_once(manager, second_manager,
                                                     django_capture_on_commit_callbacks):
    campaign = running(Campaign.Kind.WELCOME, manager, second_manager)
    with django_capture_on_commit_callbacks(execute=False):
        campaigns_tick()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.RUNNING
    newcomer = MemberFactory(email_consent=True, enrolled_at=timezone.now())
    MemberFactory(email_consent=True, enrolled_at=timezone.now() - timedelta(days=30))
    with django_capture_on_commit_callbacks(execute=True):
        first = campaigns_tick()
    with django_capture_on_commit_callbacks(execute=True):
        second = campaigns_tick()
    assert first["triggered"] == 1 and second["triggered"] == 0
    assert [m.to for m in mail.outbox] == [[newcomer.email]]


def test_birthday_greets_once_a_year(manager, second_manager, django_capture_on_commit_callbacks):
    today = timezone.localdate()
    birthday = MemberFactory(email_consent=True, birth_date=date(1990, today.month,
                                                                  min(today.day, 28)))
    campaign = running(Campaign.Kind.BIRTHDAY, manager, second_manager)
    now = timezone.now().replace(day=min(today.day, 28)) if today.day > 28 else timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        campaigns_tick(now=now)
        campaigns_tick(now=now)
    assert list(CampaignRecipient.objects.filter(campaign=campaign)
                .values_list("member_id", "occasion")) == [(birthday.id, str(now.year))]


def test_reactivation_reminds_once_per_lapse(manager, second_manager, buy,
                                            django_capture_on_commit_callbacks):
    lapsed = MemberFactory(email_consent=True)
    buy(lapsed, 100, 91)
    active = MemberFactory(email_consent=True)
    buy(active, 100, 3)
    campaign = running(Campaign.Kind.REACTIVATION, manager, second_manager, inactive_days=90)
    with django_capture_on_commit_callbacks(execute=True):
        campaigns_tick()
    with django_capture_on_commit_callbacks(execute=True):
        campaigns_tick(now=timezone.now() + timedelta(days=1))
    campaign_send(campaign.id)
    assert list(CampaignRecipient.objects.filter(campaign=campaign)
                .values_list("member_id", flat=True)) == [lapsed.id]
    assert len(mail.outbox) == 1
