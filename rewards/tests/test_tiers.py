"""Tiers: up on the qualifying purchase, down only after the grace period, by hand.

Time is simulated: purchases are dated in the past and the evaluation is given ``now``.
Tiers everywhere (unless a test says otherwise): Bronze from 0, Silver from 10,000 RUB,
Gold from 50,000 RUB, 30 days' grace each, qualification over a rolling 12 months.
"""

import dataclasses
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from members.models import DowngradePolicy, PointsEntry, TierBasis, TierWindow
from members.services import PointsRefused, points_post, purchase_refund
from members.tests.factories import MemberFactory, ProductCategoryFactory
from rewards import services
from rewards.evaluation import (
    EvaluationResult,
    TierImpact,
    tier_specs_current,
    tiers_evaluate,
    tiers_impact_preview,
)
from rewards.models import MemberTier, Tier, TierChange
from rewards.selectors import (
    member_qualifying_value,
    member_tier_history,
    member_tier_progress,
    members_facing_downgrade,
)
from rewards.tests.factories import (
    EarningRuleFactory,
    ExclusionFactory,
    MemberTierFactory,
    TierFactory,
    UserFactory,
    at,
    buy,
    programme,
    standard_tiers,
)

pytestmark = pytest.mark.django_db


def tier_state():
    return (
        list(MemberTier.objects.order_by("member_id").values_list(
            "member_id", "tier__name", "source", "below_since", "manual_until")),
        TierChange.objects.count(),
    )


def evaluate(now) -> EvaluationResult:
    """Run the nightly evaluation at ``now``, then again: the second run changes nothing."""
    result = tiers_evaluate(now=now)
    after_first = tier_state()
    again = tiers_evaluate(now=now)
    assert again == EvaluationResult(), f"second run at {now} changed {again}"
    assert tier_state() == after_first
    return result


def tier_of(member) -> str:
    return MemberTier.objects.select_related("tier").get(member=member).tier.name


def history(member) -> list[tuple]:
    return [
        (change.from_tier.name if change.from_tier else None, change.to_tier.name, change.reason)
        for change in member_tier_history(member_id=member.pk).order_by("id")
    ]


# ------------------------------------------------------------------ up at once


def test_member_moves_up_on_the_purchase_that_qualifies():
    standard_tiers()
    member = services.member_enrol(member=MemberFactory.build(), actor=None)
    assert tier_of(member) == "Bronze"

    first = buy(member, "4000")  # 4,000 < 10,000: still Bronze
    assert first.tier_change is None and tier_of(member) == "Bronze"
    second = buy(member, "8000")  # 4,000 + 8,000 = 12,000 ≥ 10,000: Silver now
    assert second.tier_change is not None
    assert second.tier_change.reason == TierChange.Reason.QUALIFIED
    assert tier_of(member) == "Silver"
    assert history(member) == [(None, "Bronze", "enrolled"), ("Bronze", "Silver", "qualified")]


def test_qualifying_spend_is_net_of_refunds():
    standard_tiers()
    member = MemberFactory()
    recording = buy(member, "12000", when=at(2025, 1, 15))
    purchase_refund(purchase_id=recording.purchase.pk, amount=Decimal("3000"), refund_key="RF-1")
    # 12,000 − 3,000 refunded = 9,000
    assert member_qualifying_value(member_id=member.pk, at=at(2025, 2, 1)) == Decimal("9000")


# ------------------------------------------------------------------ down after grace


def test_member_moves_down_only_after_the_grace_period():
    standard_tiers()
    member = MemberFactory()
    buy(member, "12000", when=at(2024, 1, 15))
    assert tier_of(member) == "Silver"

    # 10 Jan 2025: the window 10.01.2024–10.01.2025 still holds the 12,000.
    assert evaluate(at(2025, 1, 10, 3)) == EvaluationResult()
    # 20 Jan 2025: the window starts 20.01.2024, the purchase has left it: value 0.
    result = evaluate(at(2025, 1, 20, 3))
    assert (result.entered_grace, result.downgraded) == (1, 0)
    status = MemberTier.objects.get(member=member)
    assert (status.tier.name, status.below_since) == ("Silver", date(2025, 1, 20))
    # 18 Feb 2025 is day 29 of the 30 days' grace: still Silver.
    assert evaluate(at(2025, 2, 18, 3)).downgraded == 0
    assert tier_of(member) == "Silver"
    # 19 Feb 2025 = 20 Jan + 30 days: down to Bronze.
    assert evaluate(at(2025, 2, 19, 3)).downgraded == 1
    assert tier_of(member) == "Bronze"
    assert history(member) == [(None, "Silver", "qualified"), ("Silver", "Bronze", "downgraded")]


def test_buying_back_above_the_threshold_during_grace_keeps_the_tier():
    standard_tiers()
    member = MemberFactory()
    buy(member, "12000", when=at(2024, 1, 15))
    evaluate(at(2025, 1, 20, 3))  # grace starts: value 0 < 10,000
    # 1 Feb 2025: 10,000 bought; the window 01.02.2024–01.02.2025 holds exactly 10,000.
    buy(member, "10000", when=at(2025, 2, 1))
    assert MemberTier.objects.get(member=member).below_since is None
    assert evaluate(at(2025, 2, 19, 3)).downgraded == 0
    assert tier_of(member) == "Silver"


@pytest.mark.parametrize(
    ("policy", "on_19_feb", "on_21_mar"),
    [
        (DowngradePolicy.ONE_STEP, "Silver", "Bronze"),
        (DowngradePolicy.TO_SUPPORTED, "Bronze", "Bronze"),
    ],
)
def test_downgrade_policy_one_step_or_straight_to_the_supported_tier(policy, on_19_feb, on_21_mar):
    programme(tier_downgrade_policy=policy)
    standard_tiers()
    member = MemberFactory()
    buy(member, "60000", when=at(2024, 1, 15))
    assert tier_of(member) == "Gold"
    evaluate(at(2025, 1, 20, 3))  # value 0 supports Bronze: Gold's grace starts
    evaluate(at(2025, 2, 19, 3))  # 20 Jan + 30 days
    assert tier_of(member) == on_19_feb
    if policy == DowngradePolicy.ONE_STEP:
        # Still below Silver: Silver's own 30 days start on 19 Feb → 21 Mar.
        assert MemberTier.objects.get(member=member).below_since == date(2025, 2, 19)
        evaluate(at(2025, 3, 20, 3))
        assert tier_of(member) == "Silver"
    evaluate(at(2025, 3, 21, 3))
    assert tier_of(member) == on_21_mar
    downgrades = [h for h in history(member) if h[2] == "downgraded"]
    if policy == DowngradePolicy.ONE_STEP:
        assert downgrades == [("Gold", "Silver", "downgraded"), ("Silver", "Bronze", "downgraded")]
    else:
        assert downgrades == [("Gold", "Bronze", "downgraded")]


def test_one_step_downgrade_without_grace_moves_one_tier_per_evaluation_however_often_run():
    # With no grace at all, a Gold member whose value supports Bronze goes to Silver at
    # tonight's evaluation; running it again tonight must not take them on to Bronze.
    programme(tier_downgrade_policy=DowngradePolicy.ONE_STEP)
    standard_tiers(bronze=0, silver=0, gold=0)
    member = MemberFactory()
    buy(member, "60000", when=at(2024, 1, 15))
    tonight = at(2025, 1, 20, 3)
    assert tiers_evaluate(now=tonight).downgraded == 1
    assert tier_of(member) == "Silver"
    assert tiers_evaluate(now=tonight) == EvaluationResult()
    assert tier_of(member) == "Silver"


# ------------------------------------------------------------------ by hand


def test_manual_tier_wins_until_its_end_date_then_the_evaluation_applies():
    standard_tiers()
    TierFactory(name="Platinum", rank=3, threshold=Decimal("1000000"), invitation_only=True)
    manager = UserFactory(username="manager")
    member = MemberFactory()
    buy(member, "5000", when=at(2025, 1, 10))
    assert tier_of(member) == "Bronze"

    platinum = Tier.objects.get(name="Platinum")
    change = services.tier_set_manual(member_id=member.pk, tier_id=platinum.pk,
                                      reason="Invited by the CEO", until=date(2025, 3, 31),
                                      actor=manager)
    assert (change.reason, change.note, change.actor) == ("manual", "Invited by the CEO", manager)
    # 10 Mar: 5,000 + 60,000 = 65,000 would reach Gold, but the manual tier wins.
    recording = buy(member, "60000", when=at(2025, 3, 10))
    assert recording.tier_change is None and tier_of(member) == "Platinum"
    # On the end date itself it still holds.
    assert evaluate(at(2025, 3, 31, 3)) == EvaluationResult()
    assert tier_of(member) == "Platinum"
    # The day after, the evaluation applies: 65,000 supports Gold.
    assert evaluate(at(2025, 4, 1, 3)).manual_ended == 1
    status = MemberTier.objects.get(member=member)
    assert (status.tier.name, status.source, status.manual_until) == ("Gold", "qualified", None)
    assert history(member) == [
        (None, "Bronze", "qualified"),
        ("Bronze", "Platinum", "manual"),
        ("Platinum", "Gold", "manual_ended"),
    ]


def test_manual_tier_protects_a_member_from_downgrade_until_its_end_date():
    standard_tiers()
    member = MemberFactory()
    buy(member, "1000", when=at(2025, 1, 10))
    services.tier_set_manual(member_id=member.pk, tier_id=Tier.objects.get(name="Silver").pk,
                             reason="Complaint goodwill", until=date(2025, 6, 30),
                             actor=UserFactory())
    # Value 1,000 supports only Bronze, but no grace starts while the tier is manual.
    assert evaluate(at(2025, 6, 30, 3)) == EvaluationResult()
    assert MemberTier.objects.get(member=member).below_since is None
    assert evaluate(at(2025, 7, 1, 3)).manual_ended == 1
    assert tier_of(member) == "Bronze"


def test_setting_a_tier_by_hand_needs_a_reason():
    bronze, silver, _gold = standard_tiers()
    member = MemberTierFactory(tier=bronze).member
    with pytest.raises(PointsRefused) as refusal:
        services.tier_set_manual(member_id=member.pk, tier_id=silver.pk, reason="  ",
                                 until=None, actor=UserFactory())
    assert refusal.value.code == "reason_required"
    assert tier_of(member) == "Bronze" and not TierChange.objects.exists()


def test_invitation_only_tier_is_never_reached_by_spend():
    standard_tiers()
    TierFactory(name="Platinum", rank=3, threshold=Decimal("0"), invitation_only=True)
    member = MemberFactory()
    buy(member, "2000000", when=at(2025, 1, 10))
    assert tier_of(member) == "Gold"
    evaluate(at(2025, 1, 11, 3))
    assert tier_of(member) == "Gold"


# ------------------------------------------------------------------ windows and basis


def test_calendar_year_window_starts_again_on_the_first_of_january():
    programme(tier_window=TierWindow.CALENDAR_YEAR)
    standard_tiers()
    member = MemberFactory()
    buy(member, "12000", when=at(2024, 6, 15))
    assert tier_of(member) == "Silver"
    assert evaluate(at(2024, 12, 31, 3)) == EvaluationResult()  # 2024: 12,000
    assert evaluate(at(2025, 1, 2, 3)).entered_grace == 1  # 2025 so far: 0
    evaluate(at(2025, 2, 1, 3))  # 2 Jan + 30 days
    assert tier_of(member) == "Bronze"


def test_rolling_window_counts_the_last_n_months():
    programme(tier_window=TierWindow.ROLLING, tier_window_months=12)
    standard_tiers()
    member = MemberFactory()
    buy(member, "12000", when=at(2024, 6, 15))
    # 2 Jan 2025: window 02.01.2024–02.01.2025 holds the purchase.
    assert evaluate(at(2025, 1, 2, 3)) == EvaluationResult()
    # 16 Jun 2025: window starts 16.06.2024, one day after the purchase.
    assert evaluate(at(2025, 6, 16, 3)).entered_grace == 1
    evaluate(at(2025, 7, 16, 3))  # 16 Jun + 30 days
    assert tier_of(member) == "Bronze"


def test_shorter_rolling_window_forgets_spend_sooner():
    programme(tier_window=TierWindow.ROLLING, tier_window_months=6)
    standard_tiers()
    member = MemberFactory()
    buy(member, "12000", when=at(2024, 6, 15))
    # The window of 15 Dec 03:00 starts 15 Jun 03:00, before the noon purchase: still in.
    assert evaluate(at(2024, 12, 15, 3)) == EvaluationResult()
    # The window of 16 Dec 03:00 starts 16 Jun 03:00: the purchase has left it.
    assert evaluate(at(2024, 12, 16, 3)).entered_grace == 1


def test_lifetime_window_never_forgets_spend():
    programme(tier_window=TierWindow.LIFETIME)
    standard_tiers()
    member = MemberFactory()
    buy(member, "12000", when=at(2015, 3, 1))
    assert evaluate(at(2030, 1, 1, 3)) == EvaluationResult()
    assert tier_of(member) == "Silver"


def test_points_basis_member_moves_up_on_the_purchase_whose_points_qualify():
    # Silver from 500 points earned. 10,000 RUB × 0.05 = 500 points: Silver at once.
    programme(tier_basis=TierBasis.POINTS)
    TierFactory(name="Bronze", rank=0, threshold=Decimal("0"))
    TierFactory(name="Silver", rank=1, threshold=Decimal("500"))
    EarningRuleFactory()
    member = MemberFactory()
    recording = buy(member, "10000")
    assert recording.accrual.amount == 500
    assert tier_of(member) == "Silver"


def test_points_basis_evaluation_counts_points_earned_not_money_spent():
    programme(tier_basis=TierBasis.POINTS)
    TierFactory(name="Bronze", rank=0, threshold=Decimal("0"))
    TierFactory(name="Silver", rank=1, threshold=Decimal("500"))
    EarningRuleFactory()
    tobacco = ProductCategoryFactory(code="tobacco", name="Tobacco")
    ExclusionFactory(category=tobacco)
    earner, smoker = MemberFactory(), MemberFactory()
    MemberTierFactory(member=earner, tier=Tier.objects.get(name="Bronze"))
    # 600 points earned on 1 Mar (e.g. an imported accrual, no receipt).
    points_post(member_id=earner.pk, amount=600, kind=PointsEntry.Kind.ACCRUAL,
                idempotency_key="import:1", posted_at=at(2025, 3, 1))
    # 20,000 RUB of tobacco earns no points: spend does not count on this basis.
    buy(smoker, "20000", when=at(2025, 3, 1), lines=[("20000", tobacco, "")])
    evaluate(at(2025, 3, 2, 3))
    assert tier_of(earner) == "Silver"
    assert tier_of(smoker) == "Bronze"
    # A return of 200 points brings the earned points to 400, below Silver.
    points_post(member_id=earner.pk, amount=-200, kind=PointsEntry.Kind.RETURN,
                idempotency_key="import:1:return", posted_at=at(2025, 3, 5), allow_debt=True)
    assert member_qualifying_value(member_id=earner.pk, at=at(2025, 3, 6)) == Decimal("400")


# ------------------------------------------------------------------ impact and progress


def test_impact_preview_counts_who_would_move_without_moving_anyone():
    """Four members bought on 10 Jan 2025; the manager proposes Silver 15,000, Gold 25,000.

        A  5,000  Bronze → Bronze   —
        B 12,000  Silver → Bronze   down
        C 30,000  Silver → Gold     up
        D 60,000  Gold   → Gold     —
        E manual Gold (left out), F blocked (not evaluated)
    """
    bronze, silver, gold = standard_tiers()
    members = {}
    for name, spend in (("A", "5000"), ("B", "12000"), ("C", "30000"), ("D", "60000")):
        members[name] = MemberFactory()
        buy(members[name], spend, when=at(2025, 1, 10))
    assert [tier_of(members[n]) for n in "ABCD"] == ["Bronze", "Silver", "Silver", "Gold"]
    manual = MemberFactory()
    services.tier_set_manual(member_id=manual.pk, tier_id=gold.pk, reason="Partner staff",
                             until=None, actor=UserFactory())
    blocked = MemberFactory(status="blocked")
    MemberTierFactory(member=blocked, tier=silver)
    before = tier_state()

    proposed = [
        dataclasses.replace(spec, threshold=Decimal("15000")) if spec.id == silver.pk
        else dataclasses.replace(spec, threshold=Decimal("25000")) if spec.id == gold.pk
        else spec
        for spec in tier_specs_current()
    ]
    impact = tiers_impact_preview(proposed=proposed, now=at(2025, 2, 1))
    assert impact == TierImpact(members=4, up=1, down=1)
    assert tiers_impact_preview(proposed=tier_specs_current(), now=at(2025, 2, 1)) == TierImpact(
        members=4, up=0, down=0)
    assert tier_state() == before


def test_progress_says_how_much_more_reaches_the_next_tier():
    standard_tiers()
    member = MemberFactory()
    buy(member, "45800")  # today: Silver
    progress = member_tier_progress(member_id=member.pk)
    assert progress.tier.name == "Silver"
    assert progress.value == Decimal("45800")
    # 50,000 − 45,800 = 4,200 RUB more to Gold
    assert (progress.next_tier.name, progress.to_next) == ("Gold", Decimal("4200"))
    assert (progress.downgrade_on, progress.to_keep) == (None, Decimal("0"))
    assert progress.window_end is None  # a rolling window has no end date

    programme(tier_window=TierWindow.CALENDAR_YEAR)
    progress = member_tier_progress(member_id=member.pk)
    assert progress.window_end == date(timezone.localdate().year, 12, 31)


def test_progress_says_when_a_member_goes_down_and_what_keeps_the_tier():
    standard_tiers()
    member = MemberFactory()
    now = timezone.now()
    buy(member, "12000", when=now - timedelta(days=400))  # Silver then
    buy(member, "6000", when=now - timedelta(days=30))
    # Five days ago the evaluation found 6,000 in the window (the 12,000 left it).
    five_days_ago = now - timedelta(days=5)
    evaluate(five_days_ago)
    below_since = timezone.localdate(five_days_ago)
    assert MemberTier.objects.get(member=member).below_since == below_since

    progress = member_tier_progress(member_id=member.pk)
    assert progress.tier.name == "Silver"
    # 10,000 − 6,000 = 4,000 RUB keeps Silver; down 30 days after the grace started.
    assert progress.to_keep == Decimal("4000")
    assert progress.downgrade_on == below_since + timedelta(days=30)
    assert progress.downgrade_on == timezone.localdate(now) + timedelta(days=25)
    assert [row.member_id for row in members_facing_downgrade()] == [member.pk]


def test_manual_tier_shows_no_downgrade_risk():
    _bronze, silver, _gold = standard_tiers()
    member = MemberFactory()
    services.tier_set_manual(member_id=member.pk, tier_id=silver.pk, reason="VIP",
                             until=timezone.localdate() + timedelta(days=10),
                             actor=UserFactory())
    progress = member_tier_progress(member_id=member.pk)
    assert (progress.tier.name, progress.source) == ("Silver", "manual")
    assert progress.downgrade_on is None
    assert not members_facing_downgrade().exists()
