"""Read queries shared by the member pages, exports and checks."""

from __future__ import annotations

import re

from django.db.models import F, QuerySet, Sum, Value
from django.db.models.functions import Coalesce

from members.models import Member, PointsAdjustment, PointsEntry, ProgrammeSettings, Purchase
from members.phone import phone_normalise

_PHONE_OR_CARD = re.compile(r"^[\d\s()+\-.]+$")


def programme_settings_get() -> ProgrammeSettings:
    """Return the programme's settings row, creating it with the defaults if missing."""
    settings_row, _created = ProgrammeSettings.objects.get_or_create(id=1)
    return settings_row


def member_search(*, queryset: QuerySet[Member], query: str) -> QuerySet[Member]:
    """Return the members of ``queryset`` that match what support staff typed.

    One indexed lookup per kind of input: an e-mail address matches exactly (any case);
    digits match a card number exactly or a phone in any common format; anything else
    matches members whose name holds every word typed (trigram index on PostgreSQL).
    An empty query returns ``queryset`` unchanged.
    """
    query = " ".join(query.split())
    if not query:
        return queryset
    if "@" in query:
        return queryset.filter(email=query.lower())
    if _PHONE_OR_CARD.match(query):
        digits = re.sub(r"\D", "", query)
        if not digits:
            return queryset.none()
        phone = phone_normalise(query)
        return queryset.filter(card_number=digits) | queryset.filter(phone=phone)
    for word in query.upper().split(" "):
        queryset = queryset.filter(search_name__contains=word)
    return queryset


def member_ledger(*, member_id: int) -> QuerySet[PointsEntry]:
    """Return a member's ledger, newest first, with who posted each row and its receipt."""
    return (
        PointsEntry.objects.filter(member_id=member_id)
        .select_related("actor", "purchase__store", "reverses", "adjustment__decided_by")
        .order_by("-id")
    )


def member_purchases(*, member_id: int) -> QuerySet[Purchase]:
    """Return a member's purchases, newest first, with store and lines in two queries."""
    return (
        Purchase.objects.filter(member_id=member_id)
        .select_related("store")
        .prefetch_related("lines__category")
        .order_by("-purchased_at", "-id")
    )


def adjustments_pending(*, member_id: int | None = None) -> QuerySet[PointsAdjustment]:
    """Return adjustments waiting for a second person, oldest first."""
    queryset = PointsAdjustment.objects.filter(status=PointsAdjustment.Status.PENDING)
    if member_id is not None:
        queryset = queryset.filter(member_id=member_id)
    return queryset.select_related("member", "requested_by").order_by("id")


def ledger_mismatches() -> QuerySet[Member]:
    """Return members whose cached balance differs from the sum of their ledger.

    Each row carries ``ledger_sum``; an empty result means the invariant holds.
    """
    return (
        Member.objects.annotate(ledger_sum=Coalesce(Sum("points_entries__amount"), Value(0)))
        .exclude(points_balance=F("ledger_sum"))
        .values("id", "card_number", "points_balance", "ledger_sum")
        .order_by("id")
    )
