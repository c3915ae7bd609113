"""Read queries of the campaigns app: settings, segments, member data for messages, results."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.models import (
    Campaign,
    CampaignRecipient,
    CampaignResultSnapshot,
    CampaignSettings,
    MemberRfm,
    MessageDelivery,
    Segment,
    SegmentMember,
)
from campaigns.stats import ProportionTest, two_proportion_test
from members.models import Member, PointsEntry, Purchase
from members.postgres import arrays_execute
from members.selectors import points_expiry_due


def campaign_settings_get() -> CampaignSettings:
    """Return the campaign settings row, creating it with the defaults on first use."""
    row, _created = CampaignSettings.objects.get_or_create(id=1)
    return row


# ------------------------------------------------------------------ segments

NO_RFM = "none"


def _years_ago(today: date, years: int) -> date:
    """Return the date ``years`` before ``today`` (29 February becomes 28 February)."""
    try:
        return today.replace(year=today.year - years)
    except ValueError:
        return today.replace(year=today.year - years, day=28)


def segment_criteria_queryset(criteria: dict, *, now=None) -> QuerySet[Member]:
    """Return the active members matching ``criteria`` as ONE query (subqueries, no loop).

    Keys (all optional; an empty list or None means "any"): ``tiers`` (ids),
    ``rfm_segments`` (codes, "none" for members without a score), ``enrolled_from`` /
    ``enrolled_to`` (ISO dates), ``days_since_purchase_min`` / ``_max``, ``window_days``
    with ``spend_min`` / ``spend_max`` / ``purchases_min`` / ``purchases_max``,
    ``favourite_categories`` (ids), ``cities``, ``age_min`` / ``age_max``, ``genders``,
    ``birthday_months`` (1-12), ``email_consent`` / ``sms_consent`` ("yes" / "no"),
    ``balance_min`` / ``balance_max``, ``expiring_within_days`` with
    ``expiring_points_min``.
    """
    now = now or timezone.now()
    today = timezone.localdate(now)
    c = criteria or {}
    members = Member.objects.filter(status=Member.Status.ACTIVE)
    if c.get("tiers"):
        members = members.filter(tier_status__tier_id__in=c["tiers"])
    if c.get("rfm_segments"):
        codes = [code for code in c["rfm_segments"] if code != NO_RFM]
        condition = Q(rfm__segment__in=codes)
        if NO_RFM in c["rfm_segments"]:
            condition |= Q(rfm__isnull=True)
        members = members.filter(condition)
    if c.get("enrolled_from"):
        members = members.filter(enrolled_at__date__gte=c["enrolled_from"])
    if c.get("enrolled_to"):
        members = members.filter(enrolled_at__date__lte=c["enrolled_to"])
    if c.get("days_since_purchase_min") is not None:
        members = members.filter(
            last_purchase_at__lte=now - timedelta(days=int(c["days_since_purchase_min"]))
        )
    if c.get("days_since_purchase_max") is not None:
        members = members.filter(
            last_purchase_at__gte=now - timedelta(days=int(c["days_since_purchase_max"]))
        )
    window = int(c.get("window_days") or 365)
    totals = (
        Purchase.objects.filter(
            member__isnull=False, purchased_at__gte=now - timedelta(days=window)
        )
        .values("member_id")
        .annotate(spend=Sum("total"), purchases=Count("id"))
    )
    if c.get("purchases_min"):
        members = members.filter(
            id__in=totals.filter(purchases__gte=int(c["purchases_min"])).values("member_id")
        )
    if c.get("purchases_max") is not None:
        members = members.exclude(
            id__in=totals.filter(purchases__gt=int(c["purchases_max"])).values("member_id")
        )
    if c.get("spend_min"):
        members = members.filter(
            id__in=totals.filter(spend__gte=Decimal(str(c["spend_min"]))).values("member_id")
        )
    if c.get("spend_max") is not None:
        members = members.exclude(
            id__in=totals.filter(spend__gt=Decimal(str(c["spend_max"]))).values("member_id")
        )
    if c.get("favourite_categories"):
        members = members.filter(rfm__favourite_category_id__in=c["favourite_categories"])
    if c.get("cities"):
        city_match = Q()
        for city in c["cities"]:
            city_match |= Q(city__iexact=city)
        members = members.filter(city_match)
    if c.get("age_min") is not None:
        members = members.filter(birth_date__lte=_years_ago(today, int(c["age_min"])))
    if c.get("age_max") is not None:
        # Younger than age_max + 1: born after that many years ago.
        members = members.filter(birth_date__gt=_years_ago(today, int(c["age_max"]) + 1))
    if c.get("genders"):
        members = members.filter(gender__in=c["genders"])
    if c.get("birthday_months"):
        members = members.filter(birth_date__month__in=[int(m) for m in c["birthday_months"]])
    for consent in ("email_consent", "sms_consent"):
        if c.get(consent) in ("yes", "no"):
            members = members.filter(**{consent: c[consent] == "yes"})
    if c.get("balance_min") is not None:
        members = members.filter(points_balance__gte=int(c["balance_min"]))
    if c.get("balance_max") is not None:
        members = members.filter(points_balance__lte=int(c["balance_max"]))
    if c.get("expiring_within_days"):
        due = points_expiry_due(as_of=now + timedelta(days=int(c["expiring_within_days"])))
        due = due.filter(due__gte=int(c.get("expiring_points_min") or 1))
        members = members.filter(id__in=due.values("member_id"))
    return members


def segment_members(segment: Segment, *, now=None) -> QuerySet[Member]:
    """Return the active members of a saved segment, as one query."""
    if segment.kind == Segment.Kind.STATIC:
        return Member.objects.filter(
            status=Member.Status.ACTIVE,
            id__in=SegmentMember.objects.filter(segment_id=segment.id).values("member_id"),
        )
    return segment_criteria_queryset(segment.criteria, now=now)


@dataclass(frozen=True)
class SegmentPreview:
    """How many members match, and the first few of them."""

    count: int
    sample: list


def segment_preview(members: QuerySet[Member], *, size: int = 10) -> SegmentPreview:
    """Return the count (one query) and a sample (one query) of ``members``."""
    sample = list(
        members.select_related("rfm", "tier_status__tier")
        .order_by("-id")
        .only("id", "card_number", "first_name", "last_name", "city", "points_balance",
              "last_purchase_at", "rfm__segment", "tier_status__tier__name")[:size]
    )
    return SegmentPreview(count=members.count(), sample=sample)


# ------------------------------------------------------------------ messages


def offer_favourite_text(*, percent, category: str) -> str:
    """Return the text of a discount on the member's favourite category ("10% off Coffee")."""
    if not category:
        return ""
    return _("%(percent)s%% off %(category)s") % {"percent": percent, "category": category}


def member_template_contexts(*, member_ids: list[int], expiring_within_days: int = 30,
                             now: datetime | None = None,
                             with_expiring: bool = True) -> dict[int, dict]:
    """Return, per member id, what a message template may use (three queries in all).

    ``first_name``, ``last_name``, ``full_name``, ``card_number``, ``tier``, ``balance``,
    ``expiring_points``, ``expiring_on`` (the date by which they expire), ``language``,
    ``favourite_category``.
    """
    now = now or timezone.now()
    expiring_on = timezone.localdate(now) + timedelta(days=expiring_within_days)
    # Expiring points walk the members' ledgers: only when a text or the kind needs them.
    expiring = dict(
        points_expiry_due(as_of=now + timedelta(days=expiring_within_days))
        .filter(member_id__in=member_ids)
    ) if with_expiring else {}
    favourites = dict(
        MemberRfm.objects.filter(member_id__in=member_ids, favourite_category__isnull=False)
        .values_list("member_id", "favourite_category__name")
    )
    contexts = {}
    for member in Member.objects.filter(id__in=member_ids).select_related("tier_status__tier"):
        tier_status = getattr(member, "tier_status", None)
        favourite = favourites.get(member.id, "")
        contexts[member.id] = {
            "first_name": member.first_name,
            "last_name": member.last_name,
            "full_name": member.full_name,
            "card_number": member.card_number,
            "tier": tier_status.tier.name if tier_status else "",
            "balance": member.points_balance,
            "expiring_points": expiring.get(member.id, 0),
            "expiring_on": expiring_on,
            "language": member.language or "en",
            "favourite_category": favourite,
            "offer": "",
            "voucher_code": "",
            "bonus_points": 0,
        }
    return contexts


def member_deliveries(*, member_id: int, limit: int = 10) -> list[MessageDelivery]:
    """Return the member's latest messages, newest first (one query)."""
    return list(
        MessageDelivery.objects.filter(member_id=member_id)
        .select_related("campaign")
        .only("id", "channel", "purpose", "subject", "status", "skip_reason", "created_at",
              "sent_at", "campaign__id", "campaign__name")
        .order_by("-id")[:limit]
    )


# ------------------------------------------------------------------ multipliers


def _multiplier_recipients(member_ids):
    # Ordered by campaign so that, between equal multipliers, the same campaign wins
    # whether one moment or many are asked.
    return CampaignRecipient.objects.filter(
        member_id__in=list(member_ids), is_control=False,
        campaign__kind=Campaign.Kind.MULTIPLIER,
        campaign__status__in=(Campaign.Status.RUNNING, Campaign.Status.FINISHED),
    ).order_by("campaign_id")


def campaign_multipliers_lookup(member_ids, at: datetime) -> dict[int, tuple[Decimal, str]]:
    """Return ``{member_id: (multiplier, campaign name)}`` of multiplier campaigns in force
    at ``at`` for these members (the biggest when several apply). One query.

    Registered with :func:`rewards.engine.bonus_multiplier_lookup_register`; members of
    the control group get no multiplier. :func:`campaign_multiplier_periods` answers for
    many moments at once.
    """
    if not member_ids:
        return {}
    rows = (
        _multiplier_recipients(member_ids)
        .filter(campaign__starts_at__lte=at)
        .filter(Q(campaign__ends_at__isnull=True) | Q(campaign__ends_at__gt=at))
        .values_list("member_id", "campaign__multiplier", "campaign__name")
    )
    found: dict[int, tuple[Decimal, str]] = {}
    for member_id, multiplier, name in rows:
        if member_id not in found or multiplier > found[member_id][0]:
            found[member_id] = (multiplier, name)
    return found


def campaign_multiplier_periods(member_ids) -> dict[int, list[tuple]]:
    """Return ``{member_id: [(starts_at, ends_at, multiplier, campaign name)]}``: the
    periods of the multiplier campaigns these members are treated in. One query.

    What :func:`rewards.engine.bonus_multipliers_get_many` reads for a batch of receipts
    with many moments, instead of :func:`campaign_multipliers_lookup` per moment.
    """
    found: dict[int, list[tuple]] = {}
    if not member_ids:
        return found
    if connection.vendor == "postgresql":
        # A batch's thousands of members as one array bound by the server.
        rows = arrays_execute(
            f"SELECT r.member_id, c.starts_at, c.ends_at, c.multiplier, c.name "  # noqa: S608
            f"FROM {CampaignRecipient._meta.db_table} r JOIN {Campaign._meta.db_table} c "
            "ON c.id = r.campaign_id WHERE r.member_id = ANY(%s::bigint[]) "
            "AND NOT r.is_control AND c.kind = %s AND c.status = ANY(%s::text[]) "
            "AND c.starts_at IS NOT NULL ORDER BY c.id",
            [list(member_ids), Campaign.Kind.MULTIPLIER,
             [Campaign.Status.RUNNING, Campaign.Status.FINISHED]],
        )
    else:
        rows = _multiplier_recipients(member_ids).filter(
            campaign__starts_at__isnull=False
        ).values_list("member_id", "campaign__starts_at", "campaign__ends_at",
                      "campaign__multiplier", "campaign__name")
    for member_id, starts_at, ends_at, multiplier, name in rows:
        found.setdefault(member_id, []).append((starts_at, ends_at, multiplier, name))
    return found


campaign_multipliers_lookup.periods = campaign_multiplier_periods


# ------------------------------------------------------------------ results


@dataclass
class GroupResult:
    """One variant's (or the control group's) figures."""

    label: str
    variant_id: int | None
    is_control: bool
    recipients: int
    reached: int
    converted: int
    orders: int
    revenue: Decimal
    points_spent: int
    test: ProportionTest | None = None

    @property
    def conversion_rate(self) -> float:
        return self.converted / self.recipients if self.recipients else 0.0

    @property
    def conversion_percent(self) -> float:
        return self.conversion_rate * 100

    @property
    def revenue_per_recipient(self) -> Decimal:
        return (self.revenue / self.recipients).quantize(Decimal("0.01")) \
            if self.recipients else Decimal(0)

    @property
    def average_order_value(self) -> Decimal:
        return (self.revenue / self.orders).quantize(Decimal("0.01")) \
            if self.orders else Decimal(0)


@dataclass
class CampaignResults:
    groups: list[GroupResult]
    control: GroupResult | None
    winner: GroupResult | None
    attribution_days: int


def _results_sql() -> str:
    recipients = CampaignRecipient._meta.db_table
    purchases = Purchase._meta.db_table
    ledger = PointsEntry._meta.db_table
    # Per recipient: purchases and points spent inside the recipient's own window; then
    # per group. Windows are stored on the row, so no date arithmetic differs by database.
    return f"""
SELECT r.variant_id, r.is_control, COUNT(*),
       SUM(CASE WHEN r.status = 'done' THEN 1 ELSE 0 END),
       SUM(CASE WHEN bought.orders > 0 THEN 1 ELSE 0 END),
       COALESCE(SUM(bought.orders), 0), COALESCE(SUM(bought.revenue), 0),
       COALESCE(SUM(spent.points), 0)
FROM {recipients} r
LEFT JOIN (
    SELECT r2.id AS rid, COUNT(*) AS orders, SUM(p.total - p.refunded_total) AS revenue
    FROM {recipients} r2
    JOIN {purchases} p ON p.member_id = r2.member_id
         AND p.purchased_at >= r2.reference_at AND p.purchased_at < r2.window_ends_at
    WHERE r2.campaign_id = %s
    GROUP BY r2.id
) bought ON bought.rid = r.id
LEFT JOIN (
    SELECT r3.id AS rid, -SUM(e.amount) AS points
    FROM {recipients} r3
    JOIN {ledger} e ON e.member_id = r3.member_id AND e.kind = 'redemption'
         AND e.created_at >= r3.reference_at AND e.created_at < r3.window_ends_at
    WHERE r3.campaign_id = %s
    GROUP BY r3.id
) spent ON spent.rid = r.id
WHERE r.campaign_id = %s
GROUP BY r.variant_id, r.is_control
"""  # noqa: S608 - table names are ours


def campaign_results(*, campaign: Campaign) -> CampaignResults:
    """Return each variant's and the control's figures, tests against the control and the
    winner (only when its lift is significant at 5%). Two queries.

    Conversion: a recipient who bought within the attribution window after the send (the
    control: after the same moment). Revenue is net of refunds; AOV is revenue per order;
    points spent are redemptions in the window.
    """
    return _results_build(campaign, campaign_results_rows(campaign=campaign))


def campaign_results_rows(*, campaign: Campaign) -> list[tuple]:
    """Return the raw figures behind :func:`campaign_results`, one row per group (one
    query): what :class:`CampaignResultSnapshot` keeps."""
    with connection.cursor() as cursor:
        cursor.execute(_results_sql(), [campaign.id, campaign.id, campaign.id])
        return cursor.fetchall()


def campaign_results_stored(*, campaign: Campaign) -> tuple[CampaignResults, datetime] | None:
    """Return :func:`campaign_results` as last stored, and when it was computed; None when
    nothing is stored yet (one query, none when ``result_snapshot`` is prefetched)."""
    try:
        snapshot = campaign.result_snapshot
    except CampaignResultSnapshot.DoesNotExist:
        return None
    rows = [(*row[:6], Decimal(row[6]), row[7]) for row in snapshot.rows]
    return _results_build(campaign, rows), snapshot.computed_at


def _results_build(campaign: Campaign, rows) -> CampaignResults:
    variants = {v.id: v.code for v in campaign.variants.all()}
    groups: list[GroupResult] = []
    control = None
    for variant_id, is_control, total, reached, converted, orders, revenue, spent in rows:
        group = GroupResult(
            label=str(_("Control")) if is_control else
            str(_("Variant %(code)s") % {"code": variants.get(variant_id, "?")}),
            variant_id=variant_id, is_control=bool(is_control), recipients=int(total),
            reached=int(reached or 0), converted=int(converted or 0), orders=int(orders or 0),
            revenue=Decimal(str(revenue or 0)).quantize(Decimal("0.01")),
            points_spent=int(spent or 0),
        )
        if group.is_control:
            control = group
        else:
            groups.append(group)
    groups.sort(key=lambda g: g.label)
    winner = None
    if control is not None:
        for group in groups:
            group.test = two_proportion_test(
                converted=group.converted, total=group.recipients,
                control_converted=control.converted, control_total=control.recipients,
            )
        better = [g for g in groups if g.test and g.test.significant and g.test.lift > 0]
        if better:
            best = max(better, key=lambda g: g.conversion_rate)
            runners = [g for g in groups if g is not best]
            # With several variants, the best must also beat the next one significantly.
            if all(
                (t := two_proportion_test(
                    converted=best.converted, total=best.recipients,
                    control_converted=g.converted, control_total=g.recipients,
                )) and t.significant and t.lift > 0
                for g in runners
            ):
                winner = best
    return CampaignResults(groups=groups, control=control, winner=winner,
                           attribution_days=campaign.attribution_days)


def campaign_progress(*, campaign: Campaign) -> list[tuple[str, int]]:
    """Return (status label, recipients) for each status present (one query)."""
    counts = dict(
        CampaignRecipient.objects.filter(campaign_id=campaign.id)
        .values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    return [(label, counts[value]) for value, label in CampaignRecipient.Status.choices
            if value in counts]


def segment_static_count(*, segment: Segment) -> int:
    return SegmentMember.objects.filter(segment_id=segment.id).count()
