"""Tables of the dashboards: marketing spend recorded by managers, and the daily roll-ups.

The roll-ups are caches of the purchases and the points ledger, rebuilt from them by
:mod:`loyalty_admin.dashboards.rollups` (nightly, on demand for a date range, and for
today when a dashboard opens); nothing else writes them and nothing in them is edited
by hand. A day's rows are always replaced whole, so a rerun gives the same rows.

"Tier" on a roll-up row is the tier the member held when the day was rolled up: for
days rolled up each night, the tier on that day; after a rebuild of old days, the
member's tier at the time of the rebuild. Empty: no tier (or not a member).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class MarketingSpend(models.Model):
    """Money spent on acquiring members in one month (optionally per channel)."""

    month = models.DateField(
        _("month"),
        help_text=_("Any day of the month; it is stored as the month's first day."),
    )
    channel = models.CharField(
        _("channel"), max_length=100, blank=True,
        help_text=_("Where the money went, e.g. online ads or leaflets. Empty: all channels."),
    )
    amount = models.DecimalField(
        _("amount"), max_digits=14, decimal_places=2,
        help_text=_("In the programme currency."),
    )
    note = models.CharField(_("note"), max_length=500, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("recorded by"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="+",
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("marketing spend")
        verbose_name_plural = _("marketing spend")
        ordering = ["-month", "channel"]
        constraints = [
            models.UniqueConstraint(fields=["month", "channel"], name="marketing_spend_unique"),
            models.CheckConstraint(
                condition=Q(amount__gte=0), name="marketing_spend_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(month__day=1), name="marketing_spend_first_of_month"
            ),
        ]

    def __str__(self) -> str:
        label = f"{self.month:%Y-%m}"
        return f"{label} · {self.channel}" if self.channel else label

    def save(self, *args, **kwargs):
        # A month is kept as its first day so that one month has one row per channel.
        if self.month is not None:
            self.month = self.month.replace(day=1)
        super().save(*args, **kwargs)


# ------------------------------------------------------------------ roll-ups


class SalesDay(models.Model):
    """Receipts of one day per store, tier and member/non-member: sums only."""

    day = models.DateField(_("day"))
    store_id = models.BigIntegerField(_("store"))
    tier_id = models.BigIntegerField(_("tier"), null=True)
    is_member = models.BooleanField(_("member purchase"))
    purchases = models.PositiveIntegerField(_("purchases"))
    revenue = models.DecimalField(
        _("revenue"), max_digits=16, decimal_places=2,
        help_text=_("Sum of the receipts' totals (paid, after discounts)."),
    )
    refunded = models.DecimalField(_("refunded"), max_digits=16, decimal_places=2)

    class Meta:
        verbose_name = _("sales per day")
        verbose_name_plural = _("sales per day")
        indexes = [models.Index(fields=["day"], name="sales_day_idx")]
        permissions = [
            ("view_programme_dashboards", _("Can view the programme dashboards")),
            ("view_support_dashboard", _("Can view the support dashboard")),
            ("recompute_rollups", _("Can recompute the dashboards' daily roll-ups")),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.store_id}/{self.tier_id}: {self.purchases}"


class PointsDay(models.Model):
    """Ledger movements of one day per tier and kind: points in and out."""

    day = models.DateField(_("day"))
    tier_id = models.BigIntegerField(_("tier"), null=True)
    kind = models.CharField(_("kind"), max_length=12)
    points_in = models.BigIntegerField(_("points added"))
    points_out = models.BigIntegerField(_("points taken"), help_text=_("Positive."))
    entries = models.PositiveIntegerField(_("ledger rows"))

    class Meta:
        verbose_name = _("points per day")
        verbose_name_plural = _("points per day")
        indexes = [models.Index(fields=["day"], name="points_day_idx")]

    def __str__(self) -> str:
        return f"{self.day} {self.kind}: +{self.points_in} −{self.points_out}"


class EnrolmentDay(models.Model):
    """Members who enrolled on one day, per tier."""

    day = models.DateField(_("day"))
    tier_id = models.BigIntegerField(_("tier"), null=True)
    members = models.PositiveIntegerField(_("members"))

    class Meta:
        verbose_name = _("enrolments per day")
        verbose_name_plural = _("enrolments per day")
        indexes = [models.Index(fields=["day"], name="enrolment_day_idx")]

    def __str__(self) -> str:
        return f"{self.day} {self.tier_id}: {self.members}"


class MemberDay(models.Model):
    """What one member did on one day: the source of every count of distinct members.

    A member has one row per store they bought at that day, and one row without a
    store for points spent on rewards that day.
    """

    day = models.DateField(_("day"))
    member_id = models.BigIntegerField(_("member"))
    store_id = models.BigIntegerField(_("store"), null=True)
    tier_id = models.BigIntegerField(_("tier"), null=True)
    enrolled_on = models.DateField(_("enrolled on"))
    # Database defaults: the roll-up's INSERT ... SELECT leaves out what a row lacks.
    purchases = models.PositiveIntegerField(_("purchases"), db_default=0)
    revenue = models.DecimalField(_("revenue"), max_digits=16, decimal_places=2, db_default=0)
    points_spent = models.BigIntegerField(_("points spent"), db_default=0)
    first_purchase = models.BooleanField(
        _("first purchase ever"), db_default=False,
        help_text=_("The member bought on this day and never before (new customer)."),
    )

    class Meta:
        verbose_name = _("member activity per day")
        verbose_name_plural = _("member activity per day")
        indexes = [
            models.Index(fields=["day", "member_id"], name="member_day_idx"),
            # A member's days: the first-purchase flag and the member count parts read
            # the history of a day's members. Covering what they read, PostgreSQL answers
            # from the index alone (31,000 members' 657,000 days at 1M members) instead
            # of scanning the whole table (2.4 GB); SQLite leaves out INCLUDE.
            models.Index(fields=["member_id", "day"], name="member_day_history_idx",
                         include=["store_id", "tier_id", "purchases", "enrolled_on"]),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.member_id}"


class MemberCountPart(models.Model):
    """Pieces of the counts of distinct members, so that no page groups member-days.

    Built from :class:`MemberDay` by the roll-up. For one filter (``store_id`` and
    ``tier_id``, 0 meaning every store or every tier), each member's days that pass it
    form a sequence; every day of it adds to a few pairs of days (``low``, ``high``),
    e.g. to ``buy_gaps`` of (the member's previous day with a purchase, this day). A
    count of distinct members in any period [a, b] is then a signed sum of columns over
    the rows with ``low >= a`` and ``high <= b`` (see
    :func:`loyalty_admin.dashboards.selectors.members_summary`): exact for every period,
    and the rows read depend on the number of days, not of members.
    """

    # The measure columns, in the order the roll-up's SQL fills them.
    MEASURES = ("buy_days", "active_days", "one_days", "purchases", "buy_gaps",
                "one_previous", "active_gaps", "churn_gaps", "one_next", "one_span", "first")

    store_id = models.BigIntegerField(_("store"), help_text=_("0: every store."))
    tier_id = models.BigIntegerField(_("tier"), help_text=_("0: every tier."))
    low = models.DateField(_("first day"))
    high = models.DateField(_("last day"))
    # Counts of member-days of one day or pair of days: int4 keeps the rows, which a
    # long period reads by the hundred thousand, narrow. Pairs (day, day):
    buy_days = models.IntegerField(_("days with a purchase"), default=0)
    active_days = models.IntegerField(_("active days"), default=0)
    one_days = models.IntegerField(_("days with one purchase"), default=0)
    purchases = models.IntegerField(_("purchases"), default=0)
    # Pairs (previous day, day):
    buy_gaps = models.IntegerField(_("days with a purchase after another"), default=0)
    one_previous = models.IntegerField(_("days with one purchase after another"),
                                          default=0)
    active_gaps = models.IntegerField(_("active days after another"), default=0)
    # Pairs (later of enrolment and previous purchase, day), at most (day, day):
    churn_gaps = models.IntegerField(_("days with a purchase after enrolment or another"),
                                        default=0)
    # Pairs (day, next day with a purchase) and (previous, next) around one purchase:
    one_next = models.IntegerField(_("days with one purchase before another"), default=0)
    one_span = models.IntegerField(_("days with one purchase between others"), default=0)
    # Pairs (first purchase ever, first day of the sequence):
    first = models.IntegerField(_("first days with a purchase"), default=0)

    class Meta:
        verbose_name = _("part of member counts")
        verbose_name_plural = _("parts of member counts")
        constraints = [
            # One row per key: the roll-up adds and subtracts its changes in place.
            models.UniqueConstraint(fields=["store_id", "tier_id", "low", "high"],
                                    name="member_count_part_key"),
        ]

    def __str__(self) -> str:
        return f"{self.store_id}/{self.tier_id} {self.low}–{self.high}"


class CohortMonth(models.Model):
    """Members of an enrolment month who bought in a later month (the cohort triangle).

    ``all_tiers`` rows count each member once whatever their tiers in the month; the
    other rows count per tier.
    """

    cohort = models.DateField(_("enrolment month"))
    month = models.DateField(_("month"))
    tier_id = models.BigIntegerField(_("tier"), null=True)
    all_tiers = models.BooleanField(_("all tiers"), db_default=False)
    members = models.PositiveIntegerField(_("members who bought"))

    class Meta:
        verbose_name = _("cohort month")
        verbose_name_plural = _("cohort months")
        indexes = [models.Index(fields=["month"], name="cohort_month_idx")]

    def __str__(self) -> str:
        return f"{self.cohort:%Y-%m} → {self.month:%Y-%m}: {self.members}"


class ValueEstimate(models.Model):
    """The lifetime value estimate per tier or RFM segment, computed nightly."""

    class Group(models.TextChoices):
        ALL = "all", _("All members")
        TIER = "tier", _("Tier")
        SEGMENT = "segment", _("Segment")

    computed_on = models.DateField(_("computed on"))
    group = models.CharField(_("group"), max_length=10, choices=Group.choices)
    key = models.CharField(_("tier or segment"), max_length=50, blank=True)
    active_members = models.PositiveIntegerField(_("members who bought in 12 months"))
    retained_members = models.PositiveIntegerField(
        _("of them, also bought in the 12 months before")
    )
    previous_members = models.PositiveIntegerField(_("members who bought 13-24 months ago"))
    revenue = models.DecimalField(_("revenue in 12 months"), max_digits=16, decimal_places=2)

    class Meta:
        verbose_name = _("value estimate")
        verbose_name_plural = _("value estimates")
        indexes = [models.Index(fields=["computed_on"], name="value_estimate_day_idx")]

    def __str__(self) -> str:
        return f"{self.computed_on} {self.group} {self.key}"


class RollupRun(models.Model):
    """One run of the roll-up: which days, how long, by whom (the log on the pages)."""

    first_day = models.DateField(_("from"))
    last_day = models.DateField(_("to"))
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    seconds = models.FloatField(_("seconds"), null=True, blank=True)
    trigger = models.CharField(_("trigger"), max_length=20)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("requested by"), null=True, blank=True,
        on_delete=models.SET_NULL, related_name="+",
    )

    class Meta:
        verbose_name = _("roll-up run")
        verbose_name_plural = _("roll-up runs")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.first_day} – {self.last_day} ({self.trigger})"
