"""factory_boy factories of the programme, and small helpers the rewards tests share.

Points still only ever appear through the ledger service: these factories create rules,
tiers and rewards; purchases go through :func:`rewards.services.purchase_record`.
"""

import itertools
from datetime import datetime
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from members.models import Member
from members.selectors import programme_settings_get
from members.services import PurchaseLineData
from members.tests.factories import (
    MemberFactory,
    StoreFactory,
    ledger_sum,  # noqa: F401 - re-exported for the tests
)
from rewards.models import EarningRule, MemberTier, Reward, StampRule, Tier


class UserFactory(factory.django.DjangoModelFactory):
    """A staff user to act as Support or a manager (actors need no group for services)."""

    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"staff-{n}")
    is_staff = True


class TierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tier
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Tier {n}")
    rank = factory.Sequence(lambda n: 100 + n)
    threshold = Decimal("0")
    grace_days = 30
    earn_multiplier = Decimal("1.00")


class MemberTierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MemberTier

    member = factory.SubFactory(MemberFactory)
    tier = factory.SubFactory(TierFactory)
    source = MemberTier.Source.QUALIFIED


class EarningRuleFactory(factory.django.DjangoModelFactory):
    """The base rate: 0.05 points per RUB (5 points per 100 RUB), rounded down."""

    class Meta:
        model = EarningRule

    name = "Base 5%"
    kind = EarningRule.Kind.BASE
    points_per_unit = Decimal("0.05")
    rounding = EarningRule.Rounding.DOWN
    min_purchase = Decimal("0")


class CategoryMultiplierFactory(EarningRuleFactory):
    name = factory.LazyAttribute(lambda rule: f"{rule.category.name} x{rule.multiplier}")
    kind = EarningRule.Kind.CATEGORY
    points_per_unit = None
    multiplier = Decimal("2")


class SkuMultiplierFactory(EarningRuleFactory):
    name = factory.LazyAttribute(lambda rule: f"{rule.sku} x{rule.multiplier}")
    kind = EarningRule.Kind.SKU
    points_per_unit = None
    sku = factory.Sequence(lambda n: f"SKU-{n}")
    multiplier = Decimal("3")


class ExclusionFactory(EarningRuleFactory):
    name = factory.LazyAttribute(lambda rule: f"No points on {rule.category.name}")
    kind = EarningRule.Kind.EXCLUDE
    points_per_unit = None


class RewardFactory(factory.django.DjangoModelFactory):
    """A 500 RUB voucher for 100 points, unlimited, valid 90 days."""

    class Meta:
        model = Reward

    name = factory.Sequence(lambda n: f"Reward {n}")
    kind = Reward.Kind.FIXED
    points_cost = 100
    value = Decimal("500")
    voucher_valid_days = 90


class StampRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StampRule

    name = "Every 3rd coffee is free"
    every = 3
    reward = factory.SubFactory(
        RewardFactory, kind=Reward.Kind.GIFT, name="Free coffee", value=Decimal("0")
    )


# ------------------------------------------------------------------ helpers


def at(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    """Return an aware moment in the programme's time zone (noon by default)."""
    return timezone.make_aware(datetime(year, month, day, hour, minute))


def programme(**fields):
    """Change the programme settings for one test and return the row."""
    settings_row = programme_settings_get()
    for name, value in fields.items():
        setattr(settings_row, name, value)
    settings_row.save()
    return settings_row


def standard_tiers(**grace) -> tuple[Tier, Tier, Tier]:
    """Bronze from 0, Silver from 10,000 RUB, Gold from 50,000 RUB; 30 days' grace each."""
    bronze = TierFactory(name="Bronze", rank=0, threshold=Decimal("0"),
                         grace_days=grace.get("bronze", 30))
    silver = TierFactory(name="Silver", rank=1, threshold=Decimal("10000"),
                         grace_days=grace.get("silver", 30), earn_multiplier=Decimal("1.25"))
    gold = TierFactory(name="Gold", rank=2, threshold=Decimal("50000"),
                       grace_days=grace.get("gold", 30), earn_multiplier=Decimal("1.5"))
    return bronze, silver, gold


def balance(member: Member) -> int:
    member.refresh_from_db(fields=["points_balance"])
    return member.points_balance


_receipts = itertools.count(1)


def buy(member: Member | None, total, *, when: datetime | None = None, lines=(), **kwargs):
    """Record a receipt for ``member`` through the programme; return the PurchaseRecording.

    ``lines`` are (amount, category, sku) tuples; category and sku may be None / "".
    """
    from rewards.services import purchase_record

    store = StoreFactory(code="ST-MAIN")
    return purchase_record(
        store_id=store.pk,
        receipt_number=kwargs.pop("receipt_number", f"R-{next(_receipts)}"),
        total=Decimal(total),
        purchased_at=when,
        member_id=member.pk if member is not None else None,
        lines=[
            PurchaseLineData(sku=sku or f"LINE-{i}", amount=Decimal(amount),
                             category_id=category.pk if category is not None else None)
            for i, (amount, category, sku) in enumerate(lines)
        ],
        **kwargs,
    )
