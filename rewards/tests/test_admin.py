"""The programme's admin screens: roles, the member page, redeem, tiers and their preview.

Everything goes through the real URLs, views and templates with the Django test client
on PostgreSQL; pages are checked for what a person sees and the database for what was
(or was not) written.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from members.models import Member, PointsEntry, ProgrammeSettings, PurchaseRefund
from members.roles import ANALYST, MARKETING_MANAGER, SUPPORT
from members.templatetags.points import points_details
from members.tests.factories import MemberFactory, ProductCategoryFactory, points_give
from rewards import services
from rewards.models import (
    EarningRule,
    MemberTier,
    Referral,
    Reward,
    StampRule,
    Tier,
    TierChange,
    Voucher,
)
from rewards.tests.factories import (
    CategoryMultiplierFactory,
    EarningRuleFactory,
    RewardFactory,
    balance,
    buy,
    standard_tiers,
)

pytestmark = pytest.mark.django_db

# ------------------------------------------------------------------ fixtures and helpers


def admin_url(name: str, *args) -> str:
    return reverse(f"admin:{name}", args=args)


def page_text(response) -> str:
    return response.content.decode()


def assert_shows(response, message) -> None:
    text = page_text(response)
    assert str(message) in text or escape(str(message)) in text, f"{message!r} not on the page"


def hidden_key(response) -> str:
    return response.context["form"]["idempotency_key"].value()


@pytest.fixture
def tiers():
    """Bronze from 0, Silver from 10,000 RUB, Gold from 50,000 RUB."""
    return standard_tiers()


@pytest.fixture
def member(tiers):
    """An active Silver member (12,000 RUB spent) with 1,000 points available."""
    member = MemberFactory(first_name="Ivan", last_name="Petrov", card_number="4000123412341234")
    buy(member, "12000")  # qualifies for Silver at once; its accrual is pending
    points_give(member, 1000, key=f"opening:{member.pk}")
    return member


@pytest.fixture
def reward():
    return RewardFactory(name="Coffee mug", kind=Reward.Kind.GIFT, points_cost=300, stock=5)


@pytest.fixture
def support_client(client, support_user):
    client.force_login(support_user)
    return client


@pytest.fixture
def manager_client(client, manager_user):
    client.force_login(manager_user)
    return client


def redeem(client, member, reward):
    shown = client.get(admin_url("members_member_redeem", member.pk))
    assert shown.status_code == 200
    return client.post(admin_url("members_member_redeem", member.pk),
                       {"idempotency_key": hidden_key(shown), "reward": reward.pk})


# ------------------------------------------------------------------ every admin page opens


REWARDS_MODELS = sorted(
    (model for model in admin.site._registry if model._meta.app_label == "rewards"),
    key=lambda model: model._meta.model_name,
)


@pytest.fixture
def one_of_everything(member, reward, tiers, support_user):
    EarningRuleFactory()
    StampRule.objects.create(name="Every 10th", every=10, reward=reward)
    services.reward_redeem(member_id=member.pk, reward_id=reward.pk, actor=support_user,
                           idempotency_key="smoke")
    services.referral_register(referred_id=MemberFactory().pk, referrer_id=member.pk)
    return member


def test_every_programme_model_has_an_admin():
    registered = {model._meta.model_name for model in REWARDS_MODELS}
    assert registered == {
        "tier", "membertier", "tierchange", "earningrule", "reward", "voucher", "stamprule",
        "referral",
    }


@pytest.mark.parametrize("model", REWARDS_MODELS, ids=lambda model: model._meta.model_name)
def test_every_rewards_admin_page_opens_for_a_superuser(admin_client, one_of_everything, model):
    opts = model._meta
    changelist = admin_url(f"{opts.app_label}_{opts.model_name}_changelist")
    for params in ({}, {"q": "x"}, {"q": "4000123412341234"}, {"o": "1"}):
        assert admin_client.get(changelist, params).status_code == 200, params
    model_admin = admin.site._registry[model]
    add = admin_client.get(admin_url(f"{opts.app_label}_{opts.model_name}_add"))
    assert add.status_code == (200 if model_admin.has_add_permission(add.wsgi_request) else 403)
    obj = model.objects.first()
    assert obj is not None
    change = admin_client.get(admin_url(f"{opts.app_label}_{opts.model_name}_change", obj.pk))
    assert change.status_code == 200


def test_programme_pages_open_for_a_superuser(admin_client, one_of_everything):
    member = one_of_everything
    purchase = member.purchases.get()
    voucher = Voucher.objects.get()
    for url in (
        admin_url("rewards_earningrule_simulate"),
        admin_url("rewards_voucher_cancel", voucher.pk),
        admin_url("members_member_change", member.pk),
        admin_url("members_member_redeem", member.pk),
        admin_url("members_member_tier", member.pk),
        admin_url("members_member_refund", member.pk, purchase.pk),
        admin_url("members_programmesettings_change", 1),
        admin_url("rewards_membertier_changelist") + "?downgrade=facing",
    ):
        assert admin_client.get(url).status_code == 200, url


# ------------------------------------------------------------------ redeem on the member page


def test_support_redeems_on_the_member_page_and_sees_the_voucher(support_client, member, reward):
    page = support_client.get(admin_url("members_member_change", member.pk))
    assert admin_url("members_member_redeem", member.pk) in page_text(page)
    response = redeem(support_client, member, reward)
    assert response.status_code == 302
    voucher = Voucher.objects.get()
    assert (voucher.member_id, voucher.reward_id, voucher.issued_by.username) == (
        member.pk, reward.pk, "support-1")
    assert balance(member) == 700 + 600  # 1,000 given + 600 pending accrual, less 300
    reward.refresh_from_db()
    assert reward.stock == 4
    page = support_client.get(response["Location"])
    assert voucher.code in page_text(page)
    assert_shows(page, f"Voucher {voucher.code} issued")


def test_the_same_redeem_form_posted_twice_issues_one_voucher(support_client, member, reward):
    shown = support_client.get(admin_url("members_member_redeem", member.pk))
    data = {"idempotency_key": hidden_key(shown), "reward": reward.pk}
    for _ in range(2):
        response = support_client.post(admin_url("members_member_redeem", member.pk), data)
        assert response.status_code == 302
    assert Voucher.objects.count() == 1
    assert balance(member) == 1300


def test_a_refused_redemption_shows_why_and_changes_nothing(support_client, member):
    expensive = RewardFactory(name="Weekend away", points_cost=5000)
    response = redeem(support_client, member, expensive)
    assert response.status_code == 200
    assert_shows(response, "Not enough points")
    assert not Voucher.objects.exists()
    assert balance(member) == 1600


def test_redeem_page_marks_rewards_the_member_cannot_have(support_client, member, tiers):
    RewardFactory(name="Gold lounge", points_cost=10, min_tier=tiers[2])
    RewardFactory(name="Sold out tote", points_cost=10, stock=0)
    response = support_client.get(admin_url("members_member_redeem", member.pk))
    offers = {offer["reward"].name: offer["problems"] for offer in response.context["offers"]}
    assert offers["Gold lounge"] == ["for Gold and above"]
    assert offers["Sold out tote"] == ["out of stock"]


# ------------------------------------------------------------------ roles


def analyst_posts(member, purchase, reward, tiers) -> dict:
    return {
        admin_url("members_member_redeem", member.pk): {"idempotency_key": "k",
                                                        "reward": reward.pk},
        admin_url("members_member_tier", member.pk): {"tier": tiers[2].pk, "reason": "VIP"},
        admin_url("members_member_refund", member.pk, purchase.pk): {
            "idempotency_key": "k", "amount": "100", "reason": "Returned"},
    }


def test_an_analyst_gets_403_on_redeem_set_tier_and_refund(
    client, analyst_user, member, reward, tiers
):
    client.force_login(analyst_user)
    purchase = member.purchases.get()
    entries = PointsEntry.objects.count()
    for url, data in analyst_posts(member, purchase, reward, tiers).items():
        assert client.get(url).status_code == 403, url
        assert client.post(url, data).status_code == 403, url
    assert not Voucher.objects.exists()
    assert not PurchaseRefund.objects.exists()
    assert MemberTier.objects.get(member=member).tier == tiers[1]
    assert PointsEntry.objects.count() == entries
    page = client.get(admin_url("members_member_change", member.pk))
    assert page.status_code == 200
    for url in analyst_posts(member, purchase, reward, tiers):
        assert url not in page_text(page)


def test_support_cannot_set_a_tier_and_a_manager_cannot_redeem(
    client, support_user, manager_user, member, reward, tiers
):
    client.force_login(support_user)
    assert client.get(admin_url("members_member_tier", member.pk)).status_code == 403
    client.force_login(manager_user)
    assert client.get(admin_url("members_member_redeem", member.pk)).status_code == 403


# ------------------------------------------------------------------ tiers by hand


def test_manager_sets_an_invitation_only_tier_by_hand_with_a_reason(
    manager_client, member, tiers
):
    platinum = Tier.objects.create(name="Platinum", rank=3, invitation_only=True)
    url = admin_url("members_member_tier", member.pk)
    until = timezone.localdate() + timedelta(days=90)
    missing = manager_client.post(url, {"tier": platinum.pk, "reason": " "})
    assert missing.status_code == 200
    assert MemberTier.objects.get(member=member).tier == tiers[1]
    response = manager_client.post(
        url, {"tier": platinum.pk, "reason": "VIP invitation", "until": until.isoformat()}
    )
    assert response.status_code == 302
    status = MemberTier.objects.get(member=member)
    assert (status.tier, status.source, status.manual_until) == (
        platinum, MemberTier.Source.MANUAL, until)
    change = TierChange.objects.filter(member=member).first()
    assert (change.reason, change.note, change.actor.username) == (
        TierChange.Reason.MANUAL, "VIP invitation", "manager-1")
    page = manager_client.get(response["Location"])
    assert "VIP invitation" in page_text(page)
    assert "Set by hand until" in page_text(page)


# ------------------------------------------------------------------ impact preview


def tier_data(tier: Tier, **changes) -> dict:
    data = {
        "name": tier.name, "rank": tier.rank, "colour": tier.colour,
        "threshold": str(tier.threshold), "grace_days": tier.grace_days,
        "earn_multiplier": str(tier.earn_multiplier),
        "discount_percent": str(tier.discount_percent), "perks": tier.perks, "_save": "Save",
    }
    if tier.invitation_only:
        data["invitation_only"] = "on"
    if tier.free_delivery:
        data["free_delivery"] = "on"
    data.update(changes)
    return data


@pytest.fixture
def three_members(tiers):
    """Bronze (2,000 RUB), Silver (12,000 RUB) and Gold (60,000 RUB) spenders."""
    spenders = {}
    for name, spend in (("bronze", "2000"), ("silver", "12000"), ("gold", "60000")):
        spenders[name] = MemberFactory()
        buy(spenders[name], spend)
    assert MemberTier.objects.get(member=spenders["gold"]).tier == tiers[2]
    return spenders


def test_manager_sees_the_impact_before_a_threshold_change_takes_effect(
    manager_client, tiers, three_members
):
    silver = tiers[1]
    url = admin_url("rewards_tier_change", silver.pk)
    response = manager_client.post(url, tier_data(silver, threshold="20000"))
    assert response.status_code == 200
    assert response.templates[0].name == "admin/rewards/impact_preview.html"
    impact = response.context["impact"]
    assert (impact.members, impact.up, impact.down) == (3, 0, 1)
    assert (response.context["baseline"].up, response.context["baseline"].down) == (0, 0)
    assert_shows(response, "1 member would move down (after their grace period).")
    silver.refresh_from_db()
    assert silver.threshold == Decimal("10000")  # unchanged until confirmed

    confirmed = {key: value for key, value in response.context["post_items"]}
    confirmed["_confirm"] = "Confirm and save"
    saved = manager_client.post(url, confirmed)
    assert saved.status_code == 302
    silver.refresh_from_db()
    assert silver.threshold == Decimal("20000")


def test_lowering_a_threshold_counts_the_members_who_would_move_up(
    manager_client, tiers, three_members
):
    gold = tiers[2]
    response = manager_client.post(admin_url("rewards_tier_change", gold.pk),
                                   tier_data(gold, threshold="11000"))
    impact = response.context["impact"]
    assert (impact.up, impact.down) == (1, 0)
    gold.refresh_from_db()
    assert gold.threshold == Decimal("50000")


def test_back_from_the_preview_shows_the_form_as_filled_in_and_saves_nothing(
    manager_client, tiers, three_members
):
    silver = tiers[1]
    url = admin_url("rewards_tier_change", silver.pk)
    data = tier_data(silver, threshold="20000", _back="Back")
    response = manager_client.post(url, data)
    assert response.status_code == 200
    assert response.context["adminform"].form["threshold"].value() == "20000"
    silver.refresh_from_db()
    assert silver.threshold == Decimal("10000")


def test_a_change_that_moves_nobody_between_tiers_saves_at_once(manager_client, tiers):
    silver = tiers[1]
    response = manager_client.post(admin_url("rewards_tier_change", silver.pk),
                                   tier_data(silver, name="Silver+", discount_percent="3"))
    assert response.status_code == 302
    silver.refresh_from_db()
    assert (silver.name, silver.discount_percent) == ("Silver+", Decimal("3"))


def test_adding_a_tier_is_previewed_first(manager_client, tiers, three_members):
    data = tier_data(Tier(name="Platinum", rank=3, threshold=Decimal("55000")))
    response = manager_client.post(admin_url("rewards_tier_add"), data)
    assert response.status_code == 200
    assert (response.context["impact"].up, response.context["impact"].down) == (1, 0)
    assert not Tier.objects.filter(name="Platinum").exists()
    response = manager_client.post(admin_url("rewards_tier_add"), {**data, "_confirm": "1"})
    assert response.status_code == 302
    assert Tier.objects.filter(name="Platinum", rank=3).exists()


def test_an_invalid_tier_form_shows_its_errors_not_the_preview(manager_client, tiers):
    response = manager_client.post(admin_url("rewards_tier_change", tiers[1].pk),
                                   tier_data(tiers[1], threshold="-5"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors


def test_a_window_change_in_the_settings_is_previewed_and_rolled_back(
    manager_client, tiers, three_members
):
    url = admin_url("members_programmesettings_change", 1)
    settings_row = ProgrammeSettings.objects.get()
    data = {
        field.name: getattr(settings_row, field.name)
        for field in ProgrammeSettings._meta.fields
        if field.editable and field.name != "id"
    }
    data.update(tier_basis="points", _save="Save")
    response = manager_client.post(url, data)
    assert response.status_code == 200
    # On points earned (a few hundred each) nobody reaches Silver any more.
    assert (response.context["impact"].up, response.context["impact"].down) == (0, 2)
    assert ProgrammeSettings.objects.get().tier_basis == "spend"


# ------------------------------------------------------------------ the member page


def test_member_page_shows_available_pending_tier_progress_and_accrual_rules(
    support_client, member, tiers
):
    page = support_client.get(admin_url("members_member_change", member.pk))
    text = page_text(page)
    summary = page.context["points_summary"]
    assert (summary.balance, summary.pending, summary.available) == (1600, 600, 1000)
    assert 'id="member-available">1,000<' in text and 'id="member-pending">600<' in text
    assert "38,000 RUB more to Gold" in text
    assert "Base rate 0.05 × 12,000.00 = 600.00 · Rounded down: 600" in text
    assert page.context["tier_progress"].tier == tiers[1]


def test_member_page_warns_of_a_downgrade_with_the_spend_that_keeps_the_tier(
    support_client, member, tiers
):
    MemberTier.objects.filter(member=member).update(
        tier=tiers[2], below_since=timezone.localdate()
    )
    page = support_client.get(admin_url("members_member_change", member.pk))
    keep_by = timezone.localdate() + timedelta(days=tiers[2].grace_days)
    assert f"Spend 38,000 RUB by {keep_by:%d.%m.%Y} to keep Gold" in page_text(page)
    listed = support_client.get(admin_url("rewards_membertier_changelist"),
                                {"downgrade": "facing"})
    assert [status.member_id for status in listed.context["cl"].result_list] == [member.pk]


def queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


def member_with_programme_history(*, vouchers: int, tier_changes: int, reward, actor,
                                  tiers) -> Member:
    member = MemberFactory()
    buy(member, "12000")
    points_give(member, 10_000, key=f"q:{member.pk}")
    for n in range(vouchers):
        services.reward_redeem(member_id=member.pk, reward_id=reward.pk, actor=actor,
                               idempotency_key=f"q:{member.pk}:{n}")
    for n in range(tier_changes):
        services.tier_set_manual(member_id=member.pk, tier_id=tiers[n % 3].pk,
                                 reason=f"Test {n}", until=None, actor=actor)
    return member


def test_member_page_query_count_does_not_grow_with_vouchers_or_tier_changes(
    support_client, support_user, tiers
):
    reward = RewardFactory(points_cost=10)
    small = member_with_programme_history(vouchers=1, tier_changes=1, reward=reward,
                                          actor=support_user, tiers=tiers)
    large = member_with_programme_history(vouchers=25, tier_changes=14, reward=reward,
                                          actor=support_user, tiers=tiers)
    queries_for(support_client, admin_url("members_member_change", small.pk))  # warm caches
    few = queries_for(support_client, admin_url("members_member_change", small.pk))
    many = queries_for(support_client, admin_url("members_member_change", large.pk))
    assert few == many


# ------------------------------------------------------------------ refunds


def test_support_records_a_partial_refund_and_the_points_come_back_in_proportion(
    support_client, member
):
    purchase = member.purchases.get()
    url = admin_url("members_member_refund", member.pk, purchase.pk)
    shown = support_client.get(url)
    assert shown.status_code == 200
    response = support_client.post(url, {"idempotency_key": hidden_key(shown),
                                          "amount": "3000", "reason": "Returned a jacket"})
    assert response.status_code == 302
    refund = PurchaseRefund.objects.get()
    assert (refund.amount, refund.reason, refund.actor.username) == (
        Decimal("3000"), "Returned a jacket", "support-1")
    assert refund.entry.amount == -150  # a quarter of the 600 points earned
    too_much = support_client.post(url, {"idempotency_key": "another", "amount": "9500",
                                         "reason": "Everything"})
    assert too_much.status_code == 200
    assert_shows(too_much, "would exceed what is left of the receipt")
    assert PurchaseRefund.objects.count() == 1


def test_a_refund_of_another_members_receipt_is_not_found(support_client, member):
    other = MemberFactory()
    buy(other, "1000")
    url = admin_url("members_member_refund", member.pk, other.purchases.get().pk)
    assert support_client.get(url).status_code == 404


# ------------------------------------------------------------------ vouchers


@pytest.fixture
def voucher(member, reward, support_user):
    return services.reward_redeem(member_id=member.pk, reward_id=reward.pk,
                                  actor=support_user, idempotency_key="v-1")


def test_vouchers_are_found_by_code_in_any_case_or_by_card_number(support_client, voucher):
    url = admin_url("rewards_voucher_changelist")
    for term in (voucher.code.lower(), voucher.code.replace("-", ""), "4000123412341234"):
        found = support_client.get(url, {"q": term})
        assert [v.pk for v in found.context["cl"].result_list] == [voucher.pk], term
    assert not support_client.get(url, {"q": "AAAA-BBBB-CCCC"}).context["cl"].result_list


def test_support_marks_vouchers_used_and_gifts_shipped_from_the_list(
    support_client, voucher, member
):
    url = admin_url("rewards_voucher_changelist")
    response = support_client.post(url, {"action": "mark_shipped",
                                         "_selected_action": [voucher.pk]})
    assert response.status_code == 302
    voucher.refresh_from_db()
    assert voucher.fulfilment == Voucher.Fulfilment.SHIPPED
    support_client.post(url, {"action": "mark_used", "_selected_action": [voucher.pk]})
    voucher.refresh_from_db()
    assert voucher.status == Voucher.Status.USED


def test_an_analyst_has_no_voucher_actions(client, analyst_user, voucher):
    client.force_login(analyst_user)
    url = admin_url("rewards_voucher_changelist")
    assert client.get(url).context["action_form"] is None
    client.post(url, {"action": "mark_used", "_selected_action": [voucher.pk]})
    voucher.refresh_from_db()
    assert voucher.status == Voucher.Status.ISSUED


def test_support_cancels_a_voucher_with_a_reason_and_the_points_come_back(
    support_client, voucher, member
):
    url = admin_url("rewards_voucher_cancel", voucher.pk)
    assert support_client.post(url, {"reason": "  "}).status_code == 200
    voucher.refresh_from_db()
    assert voucher.status == Voucher.Status.ISSUED
    before = balance(member)
    response = support_client.post(url, {"reason": "Customer changed their mind"})
    assert response.status_code == 302
    voucher.refresh_from_db()
    assert (voucher.status, voucher.cancel_reason) == (
        Voucher.Status.CANCELLED, "Customer changed their mind")
    assert balance(member) == before + 300
    again = support_client.post(url, {"reason": "Twice"})
    assert again.status_code == 200
    assert_shows(again, "Only an issued voucher can be cancelled")


def test_nobody_adds_edits_or_deletes_a_voucher_in_the_admin(admin_client, voucher):
    assert admin_client.get(admin_url("rewards_voucher_add")).status_code == 403
    change = admin_url("rewards_voucher_change", voucher.pk)
    response = admin_client.post(change, {"code": "HACK-HACK-HACK", "status": "used"})
    assert response.status_code == 403
    assert admin_client.get(admin_url("rewards_voucher_delete", voucher.pk)).status_code == 403
    voucher.refresh_from_db()
    assert voucher.status == Voucher.Status.ISSUED


# ------------------------------------------------------------------ enrolment


def test_a_member_added_in_the_admin_is_enrolled_with_the_entry_tier_and_welcome_bonus(
    support_client, tiers, member
):
    response = support_client.post(admin_url("members_member_add"), {
        "card_number": "5000000000000001", "first_name": "Anna", "last_name": "Smirnova",
        "phone": "+7 912 000-11-22", "email": "anna@example.com", "city": "", "language": "ru",
        "gender": "", "birth_date": "", "enrolled_at_0": "2025-01-15",
        "enrolled_at_1": "10:00:00", "source_channel": "store", "referred_by": member.pk,
    })
    assert response.status_code == 302, response.context["adminform"].form.errors
    anna = Member.objects.get(card_number="5000000000000001")
    assert MemberTier.objects.get(member=anna).tier == tiers[0]
    assert anna.points_entries.get().kind == PointsEntry.Kind.WELCOME
    assert Referral.objects.get(referred=anna).referrer == member


def test_a_refused_referral_leaves_the_new_member_enrolled_and_says_why(
    support_client, tiers, member
):
    response = support_client.post(admin_url("members_member_add"), {
        "card_number": "5000000000000002", "first_name": "Anna", "last_name": "",
        "phone": "", "email": member.email, "city": "",
        "language": "ru", "gender": "", "birth_date": "",
        "enrolled_at_0": "2025-01-15", "enrolled_at_1": "10:00:00",
        "source_channel": "store", "referred_by": member.pk,
    }, follow=True)
    assert response.status_code == 200
    assert_shows(response, services.REFERRAL_SELF)
    anna = Member.objects.get(card_number="5000000000000002")
    assert anna.referred_by_id is None
    assert not Referral.objects.exists()
    assert MemberTier.objects.get(member=anna).tier == tiers[0]
    assert balance(anna) == 100


# ------------------------------------------------------------------ rules and simulate


def test_simulate_shows_the_points_and_each_rule(support_client, member, tiers):
    EarningRuleFactory()
    coffee = ProductCategoryFactory(name="Coffee")
    CategoryMultiplierFactory(category=coffee, name="Coffee x2", multiplier=Decimal("2"))
    response = support_client.get(admin_url("rewards_earningrule_simulate"), {
        "simulate": "1", "card_number": member.card_number,
        "category_1": coffee.pk, "amount_1": "300", "amount_2": "700",
    })
    assert response.status_code == 200
    result = response.context["result"]
    # 1,000 × 0.05 = 50 × 1.25 (Silver) = 62.5, + coffee 300 × 0.05 × 1.25 × 1 = 18.75
    assert result["points"] == 81
    assert [step["kind"] for step in result["steps"]] == [
        "base", "tier", "multiplier", "rounding"]
    assert_shows(response, "Coffee x2 ×2 on 300.00: +18.75")


def test_simulate_refuses_an_unknown_card_and_a_card_with_a_tier(support_client, tiers):
    url = admin_url("rewards_earningrule_simulate")
    unknown = support_client.get(url, {"simulate": "1", "card_number": "999", "total": "100"})
    assert unknown.context["result"] is None
    assert_shows(unknown, "No member has the card number 999.")
    empty = support_client.get(url, {"simulate": "1"})
    assert_shows(empty, "Enter the receipt total or at least one line.")


def test_an_earning_rule_without_what_its_kind_needs_is_refused_field_by_field(
    manager_client,
):
    response = manager_client.post(admin_url("rewards_earningrule_add"), {
        "name": "Coffee", "kind": "category", "rounding": "down", "min_purchase": "0",
        "is_active": "on",
    })
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"category", "multiplier"}
    assert not EarningRule.objects.exists()


def test_saving_a_reward_keeps_the_stock_redemptions_took_meanwhile(
    manager_client, reward, member, support_user
):
    url = admin_url("rewards_reward_change", reward.pk)
    form = manager_client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {name: "" if value is None else value for name, value in data.items()}
    assert data["stock_shown"] == 5
    data.update(is_active="on", name="Coffee mug (new)")
    services.reward_redeem(member_id=member.pk, reward_id=reward.pk, actor=support_user,
                           idempotency_key="meanwhile")
    assert manager_client.post(url, data).status_code == 302
    reward.refresh_from_db()
    assert (reward.name, reward.stock) == ("Coffee mug (new)", 4)


def test_a_restock_adds_to_the_stock_left_after_redemptions_meanwhile(
    manager_client, reward, member, support_user
):
    url = admin_url("rewards_reward_change", reward.pk)
    form = manager_client.get(url).context["adminform"].form
    data = {name: "" if form[name].value() is None else form[name].value()
            for name in form.fields}
    data.update(is_active="on", stock="15")  # the form showed 5: ten more
    services.reward_redeem(member_id=member.pk, reward_id=reward.pk, actor=support_user,
                           idempotency_key="meanwhile")
    assert manager_client.post(url, data).status_code == 302
    reward.refresh_from_db()
    assert reward.stock == 14


# ------------------------------------------------------------------ explanations


def test_accrual_steps_read_as_words():
    steps = [
        {"step": "base", "rule": "Base", "amount": "12000.00", "rate": "0.05",
         "points": "600.00"},
        {"step": "tier", "tier": "Gold", "multiplier": "1.5", "points": "900.00"},
        {"step": "multiplier", "rule": "Coffee", "subject": "Coffee", "amount": "300.00",
         "multiplier": "2", "points": "15.00"},
        {"step": "excluded", "rule": "No tobacco", "category": "Tobacco", "amount": "500.00"},
        {"step": "rounding", "mode": "down", "raw": "915.00", "points": 915},
    ]
    assert points_details(steps) == (
        "Base rate 0.05 × 12,000.00 = 600.00 · Gold ×1.5 · Coffee ×2 on 300.00: +15.00 · "
        "Tobacco excluded (500.00 earns nothing) · Rounded down: 915"
    )
    assert points_details([]) == points_details(None) == ""
    assert points_details([{"step": "min_purchase", "amount": "90", "minimum": "100"}]) == (
        "90.00 is below the minimum purchase of 100.00: no points"
    )


@pytest.mark.parametrize("role", [SUPPORT, ANALYST, MARKETING_MANAGER])
def test_every_role_opens_the_member_page_with_the_programme_panels(
    client, role_user, member, role
):
    client.force_login(role_user(role))
    page = client.get(admin_url("members_member_change", member.pk))
    assert page.status_code == 200
    assert 'id="vouchers"' in page_text(page) and 'id="tier-history"' in page_text(page)
