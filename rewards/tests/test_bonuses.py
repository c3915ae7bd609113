"""Welcome, birthday and referral bonuses, and stamp cards."""

from datetime import date, timedelta
from decimal import Decimal

import pytest

from members.models import BirthdayTiming, Member, PointsEntry
from members.services import PointsRefused, member_status_change
from members.tests.factories import MemberFactory, ProductCategoryFactory
from rewards import services
from rewards.models import MemberTier, Referral, TierChange, Voucher
from rewards.tests.factories import (
    StampRuleFactory,
    TierFactory,
    balance,
    buy,
    programme,
)

pytestmark = pytest.mark.django_db


def bonuses(member, kind) -> list[int]:
    return list(PointsEntry.objects.filter(member=member, kind=kind)
                .order_by("id").values_list("amount", flat=True))


# ------------------------------------------------------------------ welcome


def test_enrolment_posts_the_welcome_bonus_and_the_entry_tier():
    programme(welcome_points=150)
    TierFactory(name="Bronze", rank=0)
    TierFactory(name="Silver", rank=1, threshold=Decimal("10000"))
    member = services.member_enrol(member=MemberFactory.build(email="New@Example.COM"),
                                   actor=None)
    assert member.pk is not None and member.email == "new@example.com"
    assert bonuses(member, PointsEntry.Kind.WELCOME) == [150]
    assert member.points_balance == 150
    assert MemberTier.objects.get(member=member).tier.name == "Bronze"
    assert TierChange.objects.get(member=member).reason == TierChange.Reason.ENROLLED


def test_no_welcome_bonus_when_the_programme_gives_none():
    programme(welcome_points=0)
    member = services.member_enrol(member=MemberFactory.build(), actor=None)
    assert not PointsEntry.objects.filter(member=member).exists()


# ------------------------------------------------------------------ birthday


@pytest.mark.parametrize(
    ("timing", "grant_days", "expected"),
    [
        # Born 18 June. 2025-06-16 is a Monday: its week runs to Sunday 22 June.
        (BirthdayTiming.DAY, [date(2025, 6, 17)], 0),
        (BirthdayTiming.DAY, [date(2025, 6, 18)], 1),
        (BirthdayTiming.WEEK, [date(2025, 6, 15)], 0),  # Sunday of the week before
        (BirthdayTiming.WEEK, [date(2025, 6, 16)], 1),
        (BirthdayTiming.WEEK, [date(2025, 6, 22)], 1),
        (BirthdayTiming.WEEK, [date(2025, 6, 23)], 0),
        (BirthdayTiming.MONTH, [date(2025, 5, 31)], 0),
        (BirthdayTiming.MONTH, [date(2025, 6, 1)], 1),
        (BirthdayTiming.MONTH, [date(2025, 6, 30)], 1),
        # Run every day of June: still one bonus.
        (BirthdayTiming.MONTH, [date(2025, 6, d) for d in range(1, 31)], 1),
        (BirthdayTiming.WEEK, [date(2025, 6, d) for d in range(16, 23)], 1),
    ],
)
def test_birthday_bonus_is_given_once_in_the_configured_window(timing, grant_days, expected):
    programme(birthday_points=200, birthday_timing=timing)
    member = MemberFactory(birth_date=date(1990, 6, 18))
    for day in grant_days:
        services.birthday_bonuses_grant(today=day)
    assert bonuses(member, PointsEntry.Kind.BIRTHDAY) == [200] * expected


def test_birthday_bonus_comes_again_next_year():
    programme(birthday_points=200, birthday_timing=BirthdayTiming.DAY)
    member = MemberFactory(birth_date=date(1990, 6, 18))
    assert services.birthday_bonuses_grant(today=date(2025, 6, 18)) == 1
    assert services.birthday_bonuses_grant(today=date(2025, 6, 18)) == 0
    assert services.birthday_bonuses_grant(today=date(2026, 6, 18)) == 1
    assert balance(member) == 400


def test_29_february_birthday_is_celebrated_on_28_february_in_other_years():
    programme(birthday_points=200, birthday_timing=BirthdayTiming.DAY)
    member = MemberFactory(birth_date=date(2000, 2, 29))
    # 2025 is not a leap year: 28 Feb counts, and only once.
    assert services.birthday_bonuses_grant(today=date(2025, 2, 27)) == 0
    assert services.birthday_bonuses_grant(today=date(2025, 2, 28)) == 1
    assert services.birthday_bonuses_grant(today=date(2025, 3, 1)) == 0
    # 2028 is a leap year: the 29th itself, not the 28th.
    assert services.birthday_bonuses_grant(today=date(2028, 2, 28)) == 0
    assert services.birthday_bonuses_grant(today=date(2028, 2, 29)) == 1
    assert bonuses(member, PointsEntry.Kind.BIRTHDAY) == [200, 200]


def test_birthday_week_across_new_year_gives_one_bonus_for_that_birthday():
    # Born 2 January. The week of the 2026 birthday runs Mon 29 Dec 2025 – Sun 4 Jan 2026;
    # the nightly task runs every day of it and must pay that birthday once.
    programme(birthday_points=200, birthday_timing=BirthdayTiming.WEEK)
    member = MemberFactory(birth_date=date(1990, 1, 2))
    for offset in range(7):
        services.birthday_bonuses_grant(today=date(2025, 12, 29) + timedelta(days=offset))
    assert bonuses(member, PointsEntry.Kind.BIRTHDAY) == [200]


def test_blocked_member_gets_no_birthday_bonus():
    programme(birthday_points=200, birthday_timing=BirthdayTiming.DAY)
    member = MemberFactory(birth_date=date(1990, 6, 18))
    member_status_change(member_id=member.pk, status=Member.Status.BLOCKED, reason="Fraud",
                         actor=None)
    assert services.birthday_bonuses_grant(today=date(2025, 6, 18)) == 0
    assert balance(member) == 0


# ------------------------------------------------------------------ referral


def test_referral_bonuses_are_posted_once_after_the_first_qualifying_purchase():
    programme(welcome_points=0, referral_referrer_points=300, referral_referred_points=200,
              referral_min_purchase=Decimal("500"))
    referrer = MemberFactory()
    friend = services.member_enrol(member=MemberFactory.build(), actor=None,
                                   referrer_id=referrer.pk)
    referral = Referral.objects.get(referred=friend)
    assert (referral.referrer_id, referral.status) == (referrer.pk, Referral.Status.PENDING)
    assert Member.objects.get(pk=friend.pk).referred_by_id == referrer.pk

    buy(friend, "499.99")  # below the 500 minimum: no bonus yet
    assert bonuses(referrer, PointsEntry.Kind.REFERRAL) == []
    assert bonuses(friend, PointsEntry.Kind.REFERRAL) == []

    buy(friend, "500.00")  # the first qualifying purchase
    buy(friend, "1500.00")  # a later one: nothing more
    assert bonuses(referrer, PointsEntry.Kind.REFERRAL) == [300]
    assert bonuses(friend, PointsEntry.Kind.REFERRAL) == [200]
    referral.refresh_from_db()
    assert referral.status == Referral.Status.REWARDED and referral.rewarded_at is not None
    # The friend's own accruals: 499.99 → 24, 500 → 25, 1,500 → 75; plus the 200.
    assert balance(friend) == 24 + 25 + 75 + 200
    assert balance(referrer) == 300


@pytest.mark.parametrize("same", ["phone", "email"])
def test_self_referral_by_the_same_phone_or_email_is_refused(same):
    referrer = MemberFactory(phone="79160000001", email="anna@example.com")
    contact = {"phone": "79160000001"} if same == "phone" else {"email": "anna@example.com"}
    second_card = MemberFactory(**contact)
    with pytest.raises(PointsRefused) as refusal:
        services.referral_register(referred_id=second_card.pk, referrer_id=referrer.pk)
    assert refusal.value.code == "referral_self"
    assert not Referral.objects.exists()
    assert Member.objects.get(pk=second_card.pk).referred_by_id is None
    with pytest.raises(PointsRefused):
        services.referral_register(referred_id=referrer.pk, referrer_id=referrer.pk)


def test_refused_referral_leaves_the_enrolment_intact():
    programme(welcome_points=100)
    referrer = MemberFactory(phone="79160000001")
    newcomer = MemberFactory.build(phone="79160000001", card_number="2888000000001")
    try:
        services.member_enrol(member=newcomer, actor=None, referrer_id=referrer.pk)
    except PointsRefused as refusal:
        assert refusal.code == "referral_self"
    enrolled = Member.objects.filter(card_number="2888000000001").first()
    assert enrolled is not None, "the self-referral undid the enrolment"
    assert bonuses(enrolled, PointsEntry.Kind.WELCOME) == [100]
    assert not Referral.objects.exists()


def test_more_referrals_in_a_month_than_allowed_are_refused():
    programme(referral_monthly_limit=2)
    referrer = MemberFactory()
    friends = [MemberFactory() for _ in range(3)]
    for friend in friends[:2]:
        services.referral_register(referred_id=friend.pk, referrer_id=referrer.pk)
    with pytest.raises(PointsRefused) as refusal:
        services.referral_register(referred_id=friends[2].pk, referrer_id=referrer.pk)
    assert refusal.value.code == "referral_limit"
    assert "2 people this month" in str(refusal.value)
    assert Referral.objects.count() == 2
    assert Member.objects.get(pk=friends[2].pk).referred_by_id is None


def test_a_member_can_be_referred_only_once():
    first, second, friend = MemberFactory(), MemberFactory(), MemberFactory()
    services.referral_register(referred_id=friend.pk, referrer_id=first.pk)
    with pytest.raises(PointsRefused) as refusal:
        services.referral_register(referred_id=friend.pk, referrer_id=second.pk)
    assert refusal.value.code == "referral_exists"
    assert Member.objects.get(pk=friend.pk).referred_by_id == first.pk


# ------------------------------------------------------------------ stamps


def test_every_third_coffee_purchase_issues_exactly_one_voucher():
    coffee = ProductCategoryFactory(code="coffee", name="Coffee")
    tea = ProductCategoryFactory(code="tea", name="Tea")
    rule = StampRuleFactory(every=3, category=coffee)
    member = MemberFactory()

    def visit(*categories):
        return buy(member, "300", lines=[("300", category, "") for category in categories])

    assert visit(coffee).vouchers == []  # coffee 1
    assert visit(tea).vouchers == []  # tea only: does not count
    assert visit(coffee, coffee).vouchers == []  # coffee 2 (one receipt, one stamp)
    third = visit(coffee, tea)  # coffee 3: a free coffee
    assert len(third.vouchers) == 1
    voucher = third.vouchers[0]
    assert (voucher.source, voucher.reward_id, voucher.purchase_id) == (
        Voucher.Source.STAMP, rule.reward_id, third.purchase.pk)
    assert voucher.redemption_entry is None  # it cost no points
    assert visit(coffee).vouchers == []  # coffee 4
    assert visit(coffee).vouchers == []  # coffee 5
    assert len(visit(coffee).vouchers) == 1  # coffee 6
    assert Voucher.objects.filter(member=member, source=Voucher.Source.STAMP).count() == 2


def test_the_same_receipt_delivered_twice_stamps_once():
    rule = StampRuleFactory(every=2, category=None)
    member = MemberFactory()
    buy(member, "100")
    second = buy(member, "100", receipt_number="SAME")
    again = buy(member, "100", receipt_number="SAME")
    assert len(second.vouchers) == 1 and not again.created and again.vouchers == []
    assert Voucher.objects.filter(reward=rule.reward).count() == 1


def test_cancelling_a_stamp_voucher_returns_no_stock_it_never_took():
    rule = StampRuleFactory(every=2, category=None, reward__stock=5)
    member = MemberFactory()
    buy(member, "100")
    voucher = buy(member, "100").vouchers[0]
    rule.reward.refresh_from_db()
    stock_after_issue = rule.reward.stock
    services.voucher_cancel(voucher_id=voucher.pk, reason="Issued by mistake", actor=None)
    rule.reward.refresh_from_db()
    assert rule.reward.stock == stock_after_issue
    assert balance(member) == 10  # 2 × 5 accrual points, nothing reversed
