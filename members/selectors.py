"""Read queries shared by the member pages, exports and checks."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F, Min, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from members.models import Member, PointsAdjustment, PointsEntry, ProgrammeSettings, Purchase
from members.phone import phone_normalise

_PHONE_OR_CARD = re.compile(r"^[\d\s()+\-.]+$")


def programme_settings_get() -> ProgrammeSettings:
    """Return the programme's settings row, creating it with the defaults if missing."""
    settings_row, _created = ProgrammeSettings.objects.get_or_create(id=1)
    return settings_row


def points_pending_get(*, member_id: int, at: datetime | None = None) -> int:
    """Return the member's points still in their return window at ``at`` (default now)."""
    pending = (
        PointsEntry.objects.filter(member_id=member_id, available_at__gt=at or timezone.now())
        .aggregate(total=Sum("amount"))["total"]
    )
    return max(0, pending or 0)


@dataclass(frozen=True)
class PointsSummary:
    """A member's points as the member page shows them."""

    balance: int
    pending: int
    next_pending_date: datetime | None

    @property
    def available(self) -> int:
        return self.balance - self.pending


def member_points_summary(*, member: Member) -> PointsSummary:
    """Return balance, pending points and when the next pending points become available."""
    now = timezone.now()
    pending = PointsEntry.objects.filter(member_id=member.pk, available_at__gt=now).aggregate(
        total=Sum("amount"), first=Min("available_at")
    )
    return PointsSummary(
        balance=member.points_balance,
        pending=max(0, pending["total"] or 0),
        next_pending_date=pending["first"],
    )


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


def months_before(moment: datetime, months: int) -> datetime:
    """Return ``moment`` moved ``months`` calendar months back (forward when negative),
    the day clipped to the month's last: 31 March less one month is 28 or 29 February."""
    month_index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(month_index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def points_expiry_due(*, as_of: datetime, member_id: int | None = None) -> QuerySet:
    """Return (member id, points) pairs that have expired at ``as_of`` and not been written off.

    Points expire oldest first: of everything earned before the cutoff (``as_of`` less
    the programme's expiry months), what every debit so far (spending, reversals,
    earlier expiries) has not consumed is due. A return takes back what its own purchase
    earned, so it counts against that purchase's time, not as spending. Empty when
    points never expire.
    """
    months = programme_settings_get().points_expiry_months
    if not months:
        return PointsEntry.objects.none().values_list("member_id", "amount")
    cutoff = months_before(as_of, months)
    entries = PointsEntry.objects.all()
    if member_id is not None:
        entries = entries.filter(member_id=member_id)
    return (
        entries.values("member_id")
        .annotate(
            old=Coalesce(
                Sum(
                    "amount",
                    filter=Q(amount__gt=0, created_at__lt=cutoff)
                    | Q(kind=PointsEntry.Kind.RETURN, purchase__purchased_at__lt=cutoff),
                ),
                0,
            ),
            used=Coalesce(
                Sum("amount", filter=Q(amount__lt=0) & ~Q(kind=PointsEntry.Kind.RETURN)), 0
            ),
        )
        .annotate(due=F("old") + F("used"))
        .filter(due__gt=0)
        .order_by("member_id")
        .values_list("member_id", "due")
    )


@dataclass(frozen=True)
class ExpiryForecast:
    """The next points of a member to expire: when, and how many."""

    on: datetime | None
    points: int


def member_next_expiry(*, member_id: int, now: datetime | None = None) -> ExpiryForecast:
    """Return the member's next expiry date and the points that expire then.

    Walks the member's earnings oldest first against everything spent so far; the first
    earning not yet consumed expires first.
    """
    months = programme_settings_get().points_expiry_months
    if not months:
        return ExpiryForecast(on=None, points=0)
    now = now or timezone.now()
    consumed = -(
        PointsEntry.objects.filter(member_id=member_id, amount__lt=0)
        .exclude(kind=PointsEntry.Kind.RETURN)
        .aggregate(total=Sum("amount"))["total"] or 0
    )
    # Earnings oldest first; a return lowers what its purchase earned, at that time.
    earned = sorted(
        (
            (purchased_at if kind == PointsEntry.Kind.RETURN else created_at, amount)
            for created_at, amount, kind, purchased_at in PointsEntry.objects.filter(
                Q(amount__gt=0) | Q(kind=PointsEntry.Kind.RETURN), member_id=member_id
            ).values_list("created_at", "amount", "kind", "purchase__purchased_at")
        ),
        key=lambda item: item[0],
    )
    running = 0
    first_date = None
    points = 0
    for created_at, amount in earned:
        running += amount
        if running <= consumed:
            continue
        expires_on = months_before(created_at, -months)
        if first_date is None:
            first_date = expires_on
            points = running - consumed
        elif expires_on.date() == first_date.date():
            points += amount
        else:
            break
    if first_date is None:
        return ExpiryForecast(on=None, points=0)
    return ExpiryForecast(on=first_date, points=points)


def members_with_points_expiring(*, within_days: int = 30, now: datetime | None = None) -> QuerySet:
    """Return (member id, points) for members whose points expire within ``within_days``.

    Campaigns use it for the expiring-points reminder.
    """
    now = now or timezone.now()
    return points_expiry_due(as_of=now + timedelta(days=within_days))
