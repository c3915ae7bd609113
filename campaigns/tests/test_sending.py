"""Campaign life cycle, deterministic assignment, sending exactly once, budgets, kinds."""

from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from campaigns import services
from campaigns.models import (
    Campaign,
    CampaignRecipient,
    CampaignResultSnapshot,
    ContestDraw,
    MemberRfm,
    MessageDelivery,
)
from campaigns.selectors import (
    campaign_multipliers_lookup,
    campaign_results,
    campaign_results_stored,
)
from campaigns.services import (
    assignment_bucket,
    assignment_for,
    campaign_approve,
    campaign_launch,
    campaign_results_refresh,
    campaign_send_batch,
    campaign_submit,
)
from campaigns.tasks import campaign_send
from campaigns.tests.factories import campaign_make, segment_make
from members.models import PointsEntry, ProductCategory
from members.tests.factories import MemberFactory
from rewards.engine import bonus_multipliers_get, bonus_multipliers_get_many

pytestmark = pytest.mark.django_db


@pytest.fixture
def audience(db):
    """Forty members with e-mail consent, in English."""
    return [MemberFactory(email_consent=True, language="en") for _ in range(40)]


def launched(campaign, manager, second_manager, capture):
    campaign_submit(campaign_id=campaign.id, actor=manager)
    campaign_approve(campaign_id=campaign.id, actor=second_manager)
    with capture(execute=False):
        campaign_launch(campaign_id=campaign.id, actor=second_manager)
    campaign.refresh_from_db()
    return campaign


def test_maker_cannot_approve_own_campaign_and_analyst_cannot_approve(
        manager, second_manager, role_user, campaign_roles):
    campaign = campaign_make(created_by=manager, segment=segment_make())
    campaign_submit(campaign_id=campaign.id, actor=manager)
    with pytest.raises(ValidationError, match="another person must approve"):
        campaign_approve(campaign_id=campaign.id, actor=manager)
    analyst = role_user("Analyst")
    with pytest.raises(PermissionDenied):
        campaign_approve(campaign_id=campaign.id, actor=analyst)
    campaign = campaign_approve(campaign_id=campaign.id, actor=second_manager)
    assert campaign.status == Campaign.Status.SCHEDULED
    assert campaign.approved_by == second_manager


def test_assignment_is_deterministic_and_the_sql_matches_python(
        audience, manager, second_manager, django_capture_on_commit_callbacks):
    campaign = campaign_make(created_by=manager, segment=segment_make(), variants=("A", "B"),
                             control_percent=20)
    campaign = launched(campaign, manager, second_manager, django_capture_on_commit_callbacks)
    variants = list(campaign.variants.order_by("code"))
    rows = CampaignRecipient.objects.filter(campaign=campaign)
    assert rows.count() == 40 == campaign.recipients_total
    for row in rows:
        assert row.variant_id == assignment_for(member_id=row.member_id, campaign=campaign,
                                                variants=variants)
        assert row.is_control == (row.variant_id is None)
        assert row.is_control == (assignment_bucket(member_id=row.member_id,
                                                    campaign_id=campaign.id) < 2000)
    # Same member, same campaign: same bucket, every time.
    assert assignment_bucket(member_id=7, campaign_id=3) == \
        assignment_bucket(member_id=7, campaign_id=3)


def test_split_is_close_to_the_shares_on_many_members():
    """Over 100,000 member ids: 10% control, the rest halved between A and B (±1%)."""
    campaign = Campaign(id=12, control_percent=10)
    a, b = (mock.Mock(id=1, weight=1), mock.Mock(id=2, weight=1))
    counts = {None: 0, 1: 0, 2: 0}
    for member_id in range(1, 100_001):
        counts[assignment_for(member_id=member_id, campaign=campaign, variants=[a, b])] += 1
    assert abs(counts[None] - 10_000) < 1000
    assert abs(counts[1] - 45_000) < 1000 and abs(counts[2] - 45_000) < 1000


def test_send_task_run_twice_delivers_exactly_one_message_per_recipient(
        audience, manager, second_manager, django_capture_on_commit_callbacks):
    campaign = campaign_make(created_by=manager, segment=segment_make(), control_percent=10)
    campaign = launched(campaign, manager, second_manager, django_capture_on_commit_callbacks)
    targeted = CampaignRecipient.objects.filter(campaign=campaign, is_control=False).count()
    campaign_send(campaign.id)
    campaign_send(campaign.id)
    assert len(mail.outbox) == targeted
    assert sorted(m.to[0] for m in mail.outbox) == sorted(set(m.to[0] for m in mail.outbox))
    assert MessageDelivery.objects.filter(campaign=campaign).count() == targeted
    control = CampaignRecipient.objects.filter(campaign=campaign, is_control=True)
    assert not MessageDelivery.objects.filter(
        member_id__in=control.values("member_id")).exists()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.FINISHED


def test_send_interrupted_and_resumed_skips_no_one_and_repeats_no_one(
        audience, manager, second_manager, django_capture_on_commit_callbacks):
    """A worker dies twice: once between recipients, once after a message left but before
    its recipient row was marked. The rerun sends the rest, nobody twice."""
    campaign = campaign_make(created_by=manager, segment=segment_make(), control_percent=0,
                             kind=Campaign.Kind.BONUS_POINTS, bonus_points=50)
    campaign = launched(campaign, manager, second_manager, django_capture_on_commit_callbacks)
    original = services._recipient_process
    calls = {"n": 0}

    def dies_on_the_fifth(**kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise SystemExit("worker killed")
        return original(**kwargs)

    with mock.patch.object(services, "_recipient_process", dies_on_the_fifth), \
            pytest.raises(SystemExit):
        campaign_send_batch(campaign_id=campaign.id, throttle=False)
    assert len(mail.outbox) == 4

    real_save = CampaignRecipient.save

    def dies_after_sending(self, *args, **kwargs):
        raise SystemExit("killed after the message left")

    with mock.patch.object(CampaignRecipient, "save", dies_after_sending), \
            pytest.raises(SystemExit):
        campaign_send_batch(campaign_id=campaign.id, throttle=False)
    assert len(mail.outbox) == 5  # the fifth member's message left; its row still pending
    CampaignRecipient.save = real_save

    while campaign_send_batch(campaign_id=campaign.id, throttle=False).remaining:
        pass
    recipients = [m.email for m in audience]
    assert sorted(m.to[0] for m in mail.outbox) == sorted(recipients)
    assert PointsEntry.objects.filter(kind=PointsEntry.Kind.CAMPAIGN).count() == 40
    campaign.refresh_from_db()
    assert campaign.points_given == 40 * 50
    assert set(CampaignRecipient.objects.filter(campaign=campaign)
               .values_list("status", flat=True)) == {"done"}


def test_points_budget_stops_the_campaign(audience, manager, second_manager,
                                          django_capture_on_commit_callbacks):
    campaign = campaign_make(created_by=manager, segment=segment_make(), control_percent=0,
                             kind=Campaign.Kind.BONUS_POINTS, bonus_points=100,
                             budget_points=1000)
    campaign = launched(campaign, manager, second_manager, django_capture_on_commit_callbacks)
    campaign_send(campaign.id)
    campaign.refresh_from_db()
    assert campaign.points_given == 1000
    assert PointsEntry.objects.filter(kind="campaign").count() == 10
    assert campaign.status == Campaign.Status.FINISHED
    assert CampaignRecipient.objects.filter(campaign=campaign, status="over_budget").count() \
        == 30


def test_multiplier_applies_to_the_segment_in_the_period_and_not_to_control(
        audience, manager, second_manager, django_capture_on_commit_callbacks):
    now = timezone.now()
    campaign = campaign_make(created_by=manager, segment=segment_make(), control_percent=25,
                             kind=Campaign.Kind.MULTIPLIER, multiplier=Decimal("3"),
                             channel=Campaign.Channel.NONE, variants=(),
                             starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=7))
    campaign = launched(campaign, manager, second_manager, django_capture_on_commit_callbacks)
    outsider = MemberFactory()
    ids = [m.id for m in audience] + [outsider.id]
    found = campaign_multipliers_lookup(ids, now)
    treated = set(CampaignRecipient.objects.filter(campaign=campaign, is_control=False)
                  .values_list("member_id", flat=True))
    assert set(found) == treated and outsider.id not in found
    assert all(value == (Decimal("3"), campaign.name) for value in found.values())
    assert campaign_multipliers_lookup(ids, now + timedelta(days=8)) == {}
    # The earning engine sees it through its registry.
    assert bonus_multipliers_get(member_ids=ids, at=now).keys() >= treated


def test_multipliers_for_many_moments_equal_one_moment_at_a_time_in_one_query(
        audience, manager, second_manager, django_capture_on_commit_callbacks,
        django_assert_num_queries):
    # An import asks for every receipt's own time at once: the campaign's period decides,
    # to the minute, and the biggest of two overlapping campaigns wins.
    now = timezone.now()
    everyone = segment_make()
    triple = campaign_make(created_by=manager, segment=everyone, control_percent=25,
                           name="Triple days",
                           kind=Campaign.Kind.MULTIPLIER, multiplier=Decimal("3"),
                           channel=Campaign.Channel.NONE, variants=(),
                           starts_at=now - timedelta(days=3), ends_at=now - timedelta(days=1))
    double = campaign_make(created_by=manager, segment=everyone, control_percent=0,
                           name="Double month",
                           kind=Campaign.Kind.MULTIPLIER, multiplier=Decimal("2"),
                           channel=Campaign.Channel.NONE, variants=(),
                           starts_at=now - timedelta(days=5), ends_at=now + timedelta(days=9))
    launched(triple, manager, second_manager, django_capture_on_commit_callbacks)
    launched(double, manager, second_manager, django_capture_on_commit_callbacks)
    ids = [m.id for m in audience] + [MemberFactory().id]
    times = [now - timedelta(days=6), now - timedelta(days=5), now - timedelta(days=3),
             now - timedelta(days=2), now - timedelta(days=1, minutes=1),
             now - timedelta(days=1), now]
    moments = [(member_id, at) for member_id in ids for at in times]
    with django_assert_num_queries(1):
        many = bonus_multipliers_get_many(moments=moments)
    expected = {}
    for at in times:
        for member_id, value in bonus_multipliers_get(member_ids=ids, at=at).items():
            expected[(member_id, at)] = value
    assert many == expected
    assert {value[0] for value in many.values()} == {Decimal(2), Decimal(3)}
    assert not any(at == times[0] for _member, at in many)


def test_contest_draw_is_recorded_and_reproducible(audience, manager, second_manager,
                                                    django_capture_on_commit_callbacks):
    import random

    campaign = campaign_make(created_by=manager, segment=segment_make(), control_percent=0,
                             kind=Campaign.Kind.CONTEST, winners=3)
    campaign = launched(campaign, manager, second_manager, django_capture_on_commit_callbacks)
    draw = ContestDraw.objects.get(campaign=campaign)
    assert draw.eligible_count == 40 and len(draw.winner_ids) == 3
    eligible = sorted(m.id for m in audience)
    assert random.Random(draw.seed).sample(eligible, 3) == draw.winner_ids
    assert services.contest_draw(campaign_id=campaign.id, actor=None).pk == draw.pk


@pytest.fixture
def sent(audience, manager, second_manager, django_capture_on_commit_callbacks):
    """A newsletter sent to the audience, half of it held out as control, a 14-day window;
    returns the campaign, its treated members and its control members."""
    campaign = campaign_make(created_by=manager, segment=segment_make(), control_percent=50,
                             attribution_days=14)
    campaign = launched(campaign, manager, second_manager, django_capture_on_commit_callbacks)
    campaign_send(campaign.id)
    rows = list(CampaignRecipient.objects.filter(campaign=campaign).select_related("member"))
    return (campaign, [r.member for r in rows if not r.is_control],
            [r.member for r in rows if r.is_control])


def test_results_count_conversions_in_the_window_for_variant_and_control(sent, buy):
    campaign, treated, control = sent
    # Two treated members buy inside the window (one twice), one after it; one control buys.
    buy(treated[0], 1000, -1)
    buy(treated[0], 500, -2)
    buy(treated[1], 300, -3)
    buy(treated[2], 999, -20)
    buy(control[0], 200, -1)
    results = campaign_results(campaign=campaign)
    [variant] = results.groups
    assert (variant.recipients, variant.converted, variant.orders) == (len(treated), 2, 3)
    assert variant.revenue == Decimal("1800.00")
    assert variant.average_order_value == Decimal("600.00")
    assert (results.control.recipients, results.control.converted) == (len(control), 1)
    assert variant.test.lift == pytest.approx(2 / len(treated) - 1 / len(control))
    assert results.winner is None  # far too few members to call it


def test_results_kept_for_the_dashboards_equal_the_live_ones_while_they_can_change(
        sent, buy):
    campaign, treated, control = sent
    buy(treated[0], 1000, -1)
    buy(control[0], 250, -2)

    def figures(results):
        return [(g.label, g.recipients, g.reached, g.converted, g.orders, g.revenue,
                 g.points_spent, g.test) for g in [*results.groups, results.control]]

    assert campaign_results_refresh() == 1  # running: computed
    stored, computed_at = campaign_results_stored(campaign=Campaign.objects.get(pk=campaign.pk))
    assert figures(stored) == figures(campaign_results(campaign=campaign))
    assert stored.groups[0].converted == 1 and stored.control.revenue == Decimal("250.00")

    # Finished 30 days ago with a 14-day window: figures kept since it settled stay.
    now = timezone.now()
    Campaign.objects.filter(pk=campaign.pk).update(
        status=Campaign.Status.FINISHED, finished_at=now - timedelta(days=30))
    CampaignResultSnapshot.objects.filter(campaign=campaign).update(
        computed_at=now - timedelta(days=10))
    assert campaign_results_refresh() == 0
    # Figures kept while its windows were still open are computed again.
    CampaignResultSnapshot.objects.filter(campaign=campaign).update(
        computed_at=now - timedelta(days=20))
    assert campaign_results_refresh() == 1


def test_offer_on_the_favourite_category_names_the_discount_and_the_category(
        manager, second_manager, django_capture_on_commit_callbacks):
    coffee = ProductCategory.objects.create(code="coffee", name="Coffee")
    member = MemberFactory(email_consent=True, language="en")
    MemberRfm.objects.create(
        member=member, recency_score=5, frequency_score=4, monetary_score=4,
        segment="champions", recency_days=3, frequency=12, monetary=Decimal("9000"),
        favourite_category=coffee, computed_on=timezone.localdate(),
    )
    campaign = campaign_make(created_by=manager, segment=segment_make(), control_percent=0,
                             kind=Campaign.Kind.OFFER, offer_discount_percent=15)
    campaign.variants.update(body_en="Your offer: {{ offer }}.")
    campaign = launched(campaign, manager, second_manager, django_capture_on_commit_callbacks)
    campaign_send(campaign.id)
    [message] = mail.outbox
    assert "Your offer: 15% off Coffee." in message.body
