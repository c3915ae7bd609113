"""factory_boy factories for members, stores and purchases."""

import factory
from django.utils import timezone

from members.models import Member, ProductCategory, Store


class StoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Store
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"ST-{n:03d}")
    name = factory.Faker("company")
    city = factory.Faker("city")


class ProductCategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProductCategory
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"cat-{n}")
    name = factory.Faker("word")


class MemberFactory(factory.django.DjangoModelFactory):
    """An active member with a zero balance; points only ever come through the ledger."""

    class Meta:
        model = Member

    card_number = factory.Sequence(lambda n: f"2{n:012d}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.Sequence(lambda n: f"member{n}@example.com")
    phone = factory.Sequence(lambda n: f"79{n:09d}")
    enrolled_at = factory.LazyFunction(timezone.now)


def points_give(member: Member, amount: int, *, key: str | None = None) -> None:
    """Give ``member`` points through the ledger service (the only way points appear)."""
    from members.models import PointsEntry
    from members.services import points_post

    points_post(
        member_id=member.pk, amount=amount, kind=PointsEntry.Kind.WELCOME,
        idempotency_key=key or f"test-give:{member.pk}:{amount}:{timezone.now().timestamp()}",
    )
    member.refresh_from_db(fields=["points_balance"])




def purchase_with_accrual(**kwargs):
    """Record a purchase and its base-rate accrual (5% rounded down), as the POS would.

    The members app records receipts without programme rules; tests of the member pages
    only need a receipt and its ledger row.
    """
    from decimal import ROUND_FLOOR, Decimal

    from members.models import PointsEntry
    from members.services import points_post, purchase_create

    creation = purchase_create(**kwargs)
    points = int((Decimal(kwargs["total"]) * Decimal("0.05")).to_integral_value(ROUND_FLOOR))
    if creation.created and kwargs.get("member_id") and points > 0:
        points_post(
            member_id=kwargs["member_id"], amount=points, kind=PointsEntry.Kind.ACCRUAL,
            idempotency_key=f"purchase:{creation.purchase.pk}",
            purchase_id=creation.purchase.pk,
        )
    return creation


def ledger_sum(member: Member) -> int:
    """Return the sum of the member's ledger rows (what the cached balance must equal)."""
    from members.models import PointsEntry

    return sum(PointsEntry.objects.filter(member=member).values_list("amount", flat=True))
