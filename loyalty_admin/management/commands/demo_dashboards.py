"""Make the demo dashboards show numbers: non-member purchases, marketing spend, roll-ups.

``manage.py demo_dashboards`` (after ``demo_seed`` and ``demo_programme``) adds, where
missing, receipts without a member beside the members' ones (about 2 for every 3 member
receipts, per store and day, over the last year) and the marketing spend of the last 24
months, then rebuilds every roll-up and the lifetime value estimate. Running it again
adds nothing and rebuilds the roll-ups from the same data.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from loyalty_admin.dashboards import rollups
from loyalty_admin.dashboards.periods import month_first, months_add
from loyalty_admin.models import MarketingSpend
from members.models import Member, Purchase, Store

RECEIPT_PREFIX = "DEMO-NM-"
CHANNELS = (("Online ads", 0.65), ("In-store leaflets", 0.35))


class Command(BaseCommand):
    help = "Add non-member purchases and marketing spend if missing, then build the roll-ups."

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--days", type=int, default=365,
                            help="Days back that get non-member purchases (default 365).")

    def handle(self, *args, seed: int, days: int, **options):
        rng = random.Random(seed)
        added = self._non_members(rng, days)
        self.stdout.write(f"Non-member purchases added: {added}")
        spend = self._spend(rng)
        self.stdout.write(f"Marketing spend months added: {spend}")
        runs = rollups.rollup_rebuild(progress=lambda run: None)
        seconds = sum(run.seconds or 0 for run in runs)
        self.stdout.write(f"Roll-ups rebuilt ({len(runs)} run) in {seconds:.1f} s")
        estimates = rollups.value_estimates_compute(
            as_of=timezone.localdate() - timedelta(days=1)
        )
        self.stdout.write(f"Lifetime value estimates: {estimates} rows")

    def _non_members(self, rng: random.Random, days: int) -> int:
        if Purchase.objects.filter(receipt_number__startswith=RECEIPT_PREFIX).exists():
            return 0
        stores = list(Store.objects.values_list("pk", flat=True))
        if not stores:
            return 0
        today = timezone.localdate()
        first = today - timedelta(days=days)
        per_day = Counter(dict(
            Purchase.objects.filter(member__isnull=False, purchased_at__gte=timezone.make_aware(
                datetime.combine(first, time(0))))
            .annotate(day=TruncDate("purchased_at")).values("day")
            .annotate(n=Count("id")).values_list("day", "n")
        ))
        rows = []
        for offset in range(days + 1):
            day = first + timedelta(days=offset)
            wanted = round(per_day.get(day, 0) * 2 / 3) + rng.randint(0, 2)
            for number in range(wanted):
                moment = timezone.make_aware(datetime.combine(day, time(
                    rng.randint(9, 21), rng.randint(0, 59))))
                if moment > timezone.now():
                    continue
                # Non-members spend a little less per receipt than members.
                total = Decimal(rng.lognormvariate(6.9, 0.7)).quantize(Decimal("0.01"))
                receipt = f"{RECEIPT_PREFIX}{day:%Y%m%d}-{number}"
                rows.append(Purchase(
                    store_id=rng.choice(stores), receipt_number=receipt,
                    purchased_at=moment, total=total, item_count=rng.randint(1, 8),
                ))
        with transaction.atomic():
            Purchase.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
        return len(rows)

    def _spend(self, rng: random.Random) -> int:
        this_month = month_first(timezone.localdate())
        first = months_add(this_month, -23)
        new = Counter()
        for enrolled in Member.objects.filter(
            enrolled_at__gte=timezone.make_aware(datetime.combine(first, time(0)))
        ).values_list("enrolled_at", flat=True).iterator():
            new[month_first(timezone.localdate(enrolled))] += 1
        added = 0
        for k in range(24):
            month = months_add(first, k)
            cost_per_member = Decimal(rng.randint(250, 650))
            budget = (cost_per_member * max(new[month], 5)).quantize(Decimal("1"))
            for channel, share in CHANNELS:
                _spend, created = MarketingSpend.objects.get_or_create(
                    month=month, channel=channel,
                    defaults={"amount": (budget * Decimal(str(share))).quantize(Decimal("0.01")),
                              "note": "Demo"},
                )
                added += created
        return added
