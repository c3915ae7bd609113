"""Set up a demonstration programme: tiers, earning rules, rewards and a stamp card."""

from datetime import timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from members.models import ProductCategory
from rewards.evaluation import tiers_evaluate
from rewards.models import EarningRule, Reward, StampRule, Tier

TIERS = [
    # name, rank, colour, threshold (RUB in 12 months), multiplier, discount %, grace days
    ("Bronze", 0, "#b08d57", "0", "1.00", "0", 30, False),
    ("Silver", 1, "#a7a9ac", "15000", "1.25", "3", 30, False),
    ("Gold", 2, "#d4af37", "50000", "1.50", "5", 60, False),
    ("Platinum", 3, "#5b6770", "0", "2.00", "10", 90, True),
]


class Command(BaseCommand):
    help = "Create demo tiers, earning rules, rewards and a stamp rule when there are no tiers."

    @transaction.atomic
    def handle(self, *args, **options):
        if Tier.objects.exists():
            self.stdout.write("Programme already configured; nothing to do.")
            return
        tiers = {}
        for name, rank, colour, threshold, multiplier, discount, grace, invitation in TIERS:
            tiers[name] = Tier.objects.create(
                name=name, rank=rank, colour=colour, threshold=Decimal(threshold),
                earn_multiplier=Decimal(multiplier), discount_percent=Decimal(discount),
                grace_days=grace, invitation_only=invitation, free_delivery=rank >= 2,
                perks="Personal manager, airport lounge" if invitation else "",
            )
        EarningRule.objects.create(
            name="Base rate 5%", kind=EarningRule.Kind.BASE, points_per_unit=Decimal("0.05"),
            rounding=EarningRule.Rounding.DOWN, min_purchase=Decimal("100"),
        )
        categories = {c.code: c for c in ProductCategory.objects.all()}
        if "coffee" in categories:
            EarningRule.objects.create(
                name="Coffee double points", kind=EarningRule.Kind.CATEGORY,
                category=categories["coffee"], multiplier=Decimal("2"),
            )
        if "electronics" in categories:
            EarningRule.objects.create(
                name="Electronics excluded", kind=EarningRule.Kind.EXCLUDE,
                category=categories["electronics"],
            )
        today = timezone.localdate()
        Reward.objects.create(
            name="10% off your next purchase", kind=Reward.Kind.PERCENT, points_cost=500,
            value=Decimal("10"), voucher_valid_days=60,
        )
        Reward.objects.create(
            name="500 RUB voucher", kind=Reward.Kind.FIXED, points_cost=1000,
            value=Decimal("500"), per_member_limit=3,
        )
        Reward.objects.create(
            name="Free delivery", kind=Reward.Kind.DELIVERY, points_cost=200,
        )
        Reward.objects.create(
            name="Branded thermos", kind=Reward.Kind.GIFT, points_cost=1500, stock=25,
            min_tier=tiers["Silver"],
        )
        Reward.objects.create(
            name="1,000 airline miles", kind=Reward.Kind.PARTNER, points_cost=2000,
            value=Decimal("1000"), partner="SkyMiles", min_tier=tiers["Gold"],
            available_until=today + timedelta(days=180),
        )
        free_coffee = Reward.objects.create(
            name="Free coffee", kind=Reward.Kind.GIFT, points_cost=300, voucher_valid_days=30,
        )
        StampRule.objects.create(
            name="Every 10th coffee is free", every=10, category=categories.get("coffee"),
            reward=free_coffee, starts_on=today,
        )
        result = tiers_evaluate()
        self.stdout.write(
            f"Demo programme: {len(tiers)} tiers, earning rules, rewards and a stamp card; "
            f"{result.enrolled} members placed in their tiers."
        )
