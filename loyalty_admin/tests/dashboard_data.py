"""Data for the dashboard tests: the worked example, and a generated data set."""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.utils import timezone

from members.models import PointsEntry
from members.services import points_post, purchase_create
from members.tests.factories import MemberFactory, StoreFactory


def at(day: date, hour: int = 12) -> datetime:
    """Return ``day`` at ``hour`` in the programme's time zone."""
    return timezone.make_aware(datetime.combine(day, time(hour)))


def buy(store, member, day: date, total: str, receipt: str, hour: int = 12):
    return purchase_create(
        store_id=store.pk, receipt_number=receipt, total=Decimal(total),
        purchased_at=at(day, hour), member_id=member.pk if member else None,
    ).purchase


def post(member, amount: int, kind: str, day: date, key: str):
    return points_post(member_id=member.pk, amount=amount, kind=kind, idempotency_key=key,
                       posted_at=at(day), reason="test" if kind == "adjustment" else "",
                       allow_debt=kind == PointsEntry.Kind.EXPIRY)


def worked_example() -> dict:
    """The example written out in test_dashboard_kpis.py (period: January 2025).

    Members (enrolled):  A, B, I 2024-06-01; D 2024-03-01; H 2024-04-01; C 2025-01-05.
    Purchases: A 2024-12-03 1000, 2025-01-12 500, 2025-01-20 700; B 2024-12-05 300;
    C 2025-01-10 400; D 2024-09-10 600 (lapsed), 2025-01-15 600; H 2024-05-02 250,
    2025-01-25 800; non-members 2025-01-08 200 and 2025-01-09 400.
    Ledger: I opening +500 2024-06-10, redemption −300 2025-01-15; B accrual +60
    2024-12-05, expiry −40 2025-01-20; A accrual +100 2025-01-12; C welcome +200
    2025-01-05, accrual +50 2025-01-10.
    """
    store = StoreFactory(code="EX-1")
    june = date(2024, 6, 1)
    members = {
        "A": MemberFactory(enrolled_at=at(june)),
        "B": MemberFactory(enrolled_at=at(june)),
        "I": MemberFactory(enrolled_at=at(june)),
        "D": MemberFactory(enrolled_at=at(date(2024, 3, 1))),
        "H": MemberFactory(enrolled_at=at(date(2024, 4, 1))),
        "C": MemberFactory(enrolled_at=at(date(2025, 1, 5))),
    }
    m = members
    buy(store, m["A"], date(2024, 12, 3), "1000", "A1")
    buy(store, m["A"], date(2025, 1, 12), "500", "A2")
    buy(store, m["A"], date(2025, 1, 20), "700", "A3")
    buy(store, m["B"], date(2024, 12, 5), "300", "B1")
    buy(store, m["C"], date(2025, 1, 10), "400", "C1")
    buy(store, m["D"], date(2024, 9, 10), "600", "D1")
    buy(store, m["D"], date(2025, 1, 15), "600", "D2")
    buy(store, m["H"], date(2024, 5, 2), "250", "H1")
    buy(store, m["H"], date(2025, 1, 25), "800", "H2")
    buy(store, None, date(2025, 1, 8), "200", "N1")
    buy(store, None, date(2025, 1, 9), "400", "N2")
    kind = PointsEntry.Kind
    post(m["I"], 500, kind.OPENING, date(2024, 6, 10), "ex:i-open")
    post(m["I"], -300, kind.REDEMPTION, date(2025, 1, 15), "ex:i-redeem")
    post(m["B"], 60, kind.ACCRUAL, date(2024, 12, 5), "ex:b-acc")
    post(m["B"], -40, kind.EXPIRY, date(2025, 1, 20), "ex:b-exp")
    post(m["A"], 100, kind.ACCRUAL, date(2025, 1, 12), "ex:a-acc")
    post(m["C"], 200, kind.WELCOME, date(2025, 1, 5), "ex:c-welcome")
    post(m["C"], 50, kind.ACCRUAL, date(2025, 1, 10), "ex:c-acc")
    return {"store": store, **members}


def generated(*, seed: int = 3, members: int = 40, days: int = 120, today: date) -> dict:
    """A random but reproducible programme: members joining over time, stores, purchases
    with and without members (some refunded), accruals, redemptions, expiries."""
    from rewards.models import MemberTier, Tier

    rng = random.Random(seed)
    stores = [StoreFactory(code=f"GEN-{n}") for n in range(3)]
    tiers = [Tier.objects.create(name=f"Gen tier {n}", rank=50 + n) for n in range(2)]
    first = today - timedelta(days=days)
    people = []
    for number in range(members):
        enrolled = first - timedelta(days=rng.randint(0, 200)) if number % 3 else (
            first + timedelta(days=rng.randint(0, days)))
        member = MemberFactory(enrolled_at=at(enrolled, rng.randint(0, 23)))
        if number % 4:
            MemberTier.objects.create(member=member, tier=rng.choice(tiers))
        people.append((member, enrolled))
    receipt = 0
    for offset in range(days + 1):
        day = first + timedelta(days=offset)
        for _ in range(rng.randint(0, 5)):
            receipt += 1
            member, enrolled = rng.choice(people)
            who = member if rng.random() < 0.7 and enrolled <= day else None
            hour = rng.choice([0, 1, 9, 13, 22, 23])  # midnight edges in the local zone
            if day == today and at(day, hour) > timezone.now():
                continue
            total = f"{rng.randint(50, 5000)}.{rng.randint(0, 99):02d}"
            purchase = buy(rng.choice(stores), who, day, total, f"G{receipt}", hour)
            if who is not None:
                points = int(purchase.total / 20)
                if points:
                    post(who, points, PointsEntry.Kind.ACCRUAL, day, f"gen:acc:{receipt}")
                who.refresh_from_db(fields=["points_balance"])
                if rng.random() < 0.15 and who.points_balance > 30:
                    post(who, -20, PointsEntry.Kind.REDEMPTION, day, f"gen:red:{receipt}")
                    who.refresh_from_db(fields=["points_balance"])
                if rng.random() < 0.05:
                    post(who, -5, PointsEntry.Kind.EXPIRY, day, f"gen:exp:{receipt}")
    return {"stores": stores, "tiers": tiers, "first": first}
