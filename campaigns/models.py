"""Segments, campaigns and the messages they send.

``MemberRfm`` and ``MessageDelivery`` are contracts other apps read (dashboards draw the
RFM heat map, surveys break NPS down by segment and send invitations through
:func:`campaigns.services.message_send`); keep their names and fields stable.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

_SCORE = [MinValueValidator(1), MaxValueValidator(5)]


# ------------------------------------------------------------------ settings


class CampaignSettings(models.Model):
    """Campaign-wide settings kept in the database so managers change them in the admin.

    Exactly one row (id 1); :func:`campaigns.selectors.campaign_settings_get` creates it.
    """

    rfm_window_days = models.PositiveIntegerField(
        _("RFM window (days)"), default=365, validators=[MinValueValidator(1)],
        help_text=_("Frequency and money spent count purchases of this many days back. "
                    "Members without a purchase in the window get no RFM score."),
    )
    frequency_cap_per_week = models.PositiveIntegerField(
        _("messages per member per week"), default=3,
        help_text=_("At most this many campaign messages reach one member in any 7 days. "
                    "0: no cap. Test sends and service messages do not count."),
    )
    send_rate_per_second = models.PositiveIntegerField(
        _("messages per second"), default=50, validators=[MinValueValidator(1)],
        help_text=_("Sending is throttled to this rate so the mail server is not flooded."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("campaign settings")
        verbose_name_plural = _("campaign settings")
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="campaign_settings_single_row"),
        ]

    def __str__(self) -> str:
        return str(_("Campaign settings"))


# ------------------------------------------------------------------ RFM


class RfmSegment(models.TextChoices):
    """The named RFM segments; the rule for each lives in ``campaigns.rfm.RFM_RULES``."""

    CHAMPIONS = "champions", _("Champions")
    LOYAL = "loyal", _("Loyal")
    POTENTIAL_LOYALISTS = "potential_loyalists", _("Potential loyalists")
    NEW = "new", _("New")
    PROMISING = "promising", _("Promising")
    NEED_ATTENTION = "need_attention", _("Need attention")
    AT_RISK = "at_risk", _("At risk")
    CANNOT_LOSE = "cannot_lose", _("Cannot lose them")
    HIBERNATING = "hibernating", _("Hibernating")
    LOST = "lost", _("Lost")


class MemberRfm(models.Model):
    """A member's recency, frequency and money scores (1-5, by quintiles) and segment.

    Recomputed nightly for every member with a purchase in the window; a member without
    one has no row (and is "no RFM score" in segments and on the member page).
    """

    member = models.OneToOneField(
        "members.Member", verbose_name=_("member"), primary_key=True, related_name="rfm",
        on_delete=models.CASCADE,
    )
    recency_score = models.PositiveSmallIntegerField(
        _("R"), validators=_SCORE, help_text=_("5: bought most recently.")
    )
    frequency_score = models.PositiveSmallIntegerField(
        _("F"), validators=_SCORE, help_text=_("5: most purchases in the window.")
    )
    monetary_score = models.PositiveSmallIntegerField(
        _("M"), validators=_SCORE, help_text=_("5: spent the most in the window.")
    )
    segment = models.CharField(
        _("segment"), max_length=24, choices=RfmSegment.choices, db_index=True
    )
    recency_days = models.PositiveIntegerField(_("days since last purchase"))
    frequency = models.PositiveIntegerField(_("purchases in window"))
    monetary = models.DecimalField(_("spent in window"), max_digits=14, decimal_places=2)
    favourite_category = models.ForeignKey(
        "members.ProductCategory", verbose_name=_("favourite category"), null=True,
        blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False,
        help_text=_("The category the member spent most on in the window."),
    )
    computed_on = models.DateField(_("computed on"))

    class Meta:
        verbose_name = _("RFM score")
        verbose_name_plural = _("RFM scores")
        ordering = ["member_id"]
        indexes = [
            models.Index(fields=["favourite_category"], name="rfm_favourite_category_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}: R{self.recency_score}F{self.frequency_score}" \
               f"M{self.monetary_score} {self.get_segment_display()}"

    @property
    def code(self) -> str:
        return f"{self.recency_score}{self.frequency_score}{self.monetary_score}"


class RfmRun(models.Model):
    """One nightly RFM computation: when, over which window, how long it took."""

    computed_on = models.DateField(_("computed on"))
    window_days = models.PositiveIntegerField(_("window (days)"))
    members_scored = models.PositiveIntegerField(_("members scored"), default=0)
    seconds = models.DecimalField(_("seconds"), max_digits=10, decimal_places=2, default=0)
    created_at = models.DateTimeField(_("ran at"), default=timezone.now)

    class Meta:
        verbose_name = _("RFM run")
        verbose_name_plural = _("RFM runs")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.computed_on} ({self.members_scored})"


# ------------------------------------------------------------------ segments


class Segment(models.Model):
    """A saved group of members: criteria evaluated as one query, or a static list."""

    class Kind(models.TextChoices):
        DYNAMIC = "dynamic", _("Criteria (re-evaluated every time)")
        STATIC = "static", _("Static list of card numbers")

    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)
    kind = models.CharField(
        _("kind"), max_length=10, choices=Kind.choices, default=Kind.DYNAMIC
    )
    criteria = models.JSONField(
        _("criteria"), default=dict, blank=True,
        help_text=_("What members must match; edited with the form, stored as JSON."),
    )
    last_count = models.PositiveIntegerField(_("members (last count)"), null=True, blank=True)
    last_counted_at = models.DateTimeField(_("counted at"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("created by"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("admin:campaigns_segment_change", args=[self.pk])


class SegmentMember(models.Model):
    """One member of a static segment (uploaded list of card numbers)."""

    segment = models.ForeignKey(
        Segment, verbose_name=_("segment"), on_delete=models.CASCADE, related_name="members"
    )
    member = models.ForeignKey(
        "members.Member", verbose_name=_("member"), on_delete=models.CASCADE, related_name="+"
    )

    class Meta:
        verbose_name = _("segment member")
        verbose_name_plural = _("segment members")
        constraints = [
            models.UniqueConstraint(fields=["segment", "member"], name="segment_member_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.segment_id}: {self.member_id}"


# ------------------------------------------------------------------ campaigns


class Campaign(models.Model):
    """A promotion or message to a segment, with its life cycle, budget and measurement."""

    class Kind(models.TextChoices):
        BONUS_POINTS = "bonus_points", _("Bonus points")
        MULTIPLIER = "multiplier", _("Points multiplier for a period")
        OFFER = "offer", _("Personalised offer (voucher)")
        NEWSLETTER = "newsletter", _("Newsletter")
        WELCOME = "welcome", _("Welcome (on enrolment)")
        BIRTHDAY = "birthday", _("Birthday (daily)")
        REACTIVATION = "reactivation", _("Reactivation (N days without a purchase)")
        EXPIRING = "expiring", _("Expiring points reminder")
        CONTEST = "contest", _("Contest or prize draw")

    TRIGGERED_KINDS = (Kind.WELCOME, Kind.BIRTHDAY, Kind.REACTIVATION, Kind.EXPIRING)

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        PENDING_APPROVAL = "pending_approval", _("Waiting for approval")
        SCHEDULED = "scheduled", _("Scheduled")
        RUNNING = "running", _("Running")
        FINISHED = "finished", _("Finished")
        CANCELLED = "cancelled", _("Cancelled")

    class Channel(models.TextChoices):
        EMAIL = "email", _("E-mail")
        SMS = "sms", _("SMS")
        NONE = "none", _("No message")

    # --- what
    name = models.CharField(_("name"), max_length=150)
    kind = models.CharField(_("kind"), max_length=15, choices=Kind.choices)
    description = models.TextField(_("description"), blank=True)
    segment = models.ForeignKey(
        Segment, verbose_name=_("segment"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="campaigns",
        help_text=_("Who it targets. Empty: every active member (triggered kinds: everyone "
                    "the trigger finds)."),
    )
    channel = models.CharField(
        _("channel"), max_length=5, choices=Channel.choices, default=Channel.EMAIL
    )

    # --- when
    starts_at = models.DateTimeField(_("starts"), default=timezone.now)
    ends_at = models.DateTimeField(_("ends"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.DRAFT,
        editable=False,
    )

    # --- what members get
    bonus_points = models.PositiveIntegerField(
        _("bonus points"), default=0, help_text=_("Bonus points kind: points per recipient.")
    )
    multiplier = models.DecimalField(
        _("multiplier"), max_digits=5, decimal_places=2, default=Decimal("2"),
        validators=[MinValueValidator(Decimal("1"))],
        help_text=_("Multiplier kind: base points are multiplied by this between start and "
                    "end, for the segment's members only."),
    )
    reward = models.ForeignKey(
        "rewards.Reward", verbose_name=_("voucher for"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="+",
        help_text=_("Personalised offer: the catalogue reward whose voucher each recipient "
                    "gets. Empty: a discount on the member's favourite category."),
    )
    offer_discount_percent = models.PositiveSmallIntegerField(
        _("favourite category discount (%)"), default=10,
        validators=[MinValueValidator(1), MaxValueValidator(90)],
        help_text=_("Used by an offer without a catalogue reward."),
    )
    inactive_days = models.PositiveIntegerField(
        _("days without a purchase"), default=90,
        help_text=_("Reactivation: members whose last purchase was this many days ago."),
    )
    expiring_within_days = models.PositiveIntegerField(
        _("points expiring within (days)"), default=30,
        help_text=_("Expiring points reminder: members with points expiring this soon."),
    )
    winners = models.PositiveIntegerField(
        _("winners"), default=1, help_text=_("Contest: how many members the draw picks.")
    )

    # --- budget
    budget_points = models.PositiveIntegerField(
        _("budget (points)"), null=True, blank=True,
        help_text=_("The campaign stops posting once it has given this many points. "
                    "Empty: no limit."),
    )
    budget_vouchers = models.PositiveIntegerField(
        _("budget (vouchers)"), null=True, blank=True,
        help_text=_("The campaign stops issuing once it has issued this many vouchers."),
    )
    points_given = models.PositiveIntegerField(_("points given"), default=0, editable=False)
    vouchers_issued = models.PositiveIntegerField(
        _("vouchers issued"), default=0, editable=False
    )

    # --- measurement
    control_percent = models.PositiveSmallIntegerField(
        _("control group (%)"), default=10, validators=[MaxValueValidator(50)],
        help_text=_("This share of the segment is held out and receives nothing, so the "
                    "results can be compared against it."),
    )
    attribution_days = models.PositiveIntegerField(
        _("attribution window (days)"), default=14, validators=[MinValueValidator(1)],
        help_text=_("A purchase within this many days after the send counts as a conversion."),
    )

    # --- who
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("created by"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="+", editable=False,
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("approved by"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="+", editable=False,
    )
    approved_at = models.DateTimeField(_("approved at"), null=True, blank=True, editable=False)
    launched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("launched by"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="+", editable=False,
    )
    launched_at = models.DateTimeField(_("launched at"), null=True, blank=True, editable=False)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True, editable=False)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("cancelled by"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="+", editable=False,
    )
    stop_reason = models.CharField(_("stopped because"), max_length=200, blank=True,
                                   editable=False)

    # --- sending progress
    recipients_total = models.PositiveIntegerField(_("recipients"), default=0, editable=False)
    assigned_at = models.DateTimeField(_("audience fixed at"), null=True, blank=True,
                                       editable=False)

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        ordering = ["-id"]
        permissions = [
            ("approve_campaign", _("Can approve and launch a campaign")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True) | Q(ends_at__gt=models.F("starts_at")),
                name="campaign_ends_after_start",
            ),
            # Maker-checker: whoever created a campaign cannot approve it.
            models.CheckConstraint(
                condition=Q(approved_by__isnull=True) | ~Q(approved_by=models.F("created_by")),
                name="campaign_checker_is_not_maker",
            ),
        ]
        indexes = [
            models.Index(fields=["kind", "status"], name="campaign_kind_status_idx"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("admin:campaigns_campaign_change", args=[self.pk])

    @property
    def is_triggered(self) -> bool:
        return self.kind in self.TRIGGERED_KINDS

    @property
    def is_editable(self) -> bool:
        return self.status in (self.Status.DRAFT, self.Status.PENDING_APPROVAL)


class CampaignVariant(models.Model):
    """One version of a campaign's message (A, B, ...), its share and its texts.

    Texts are Django templates with the member's name, tier, balance, expiring points and
    offer: ``{{ first_name }}``, ``{{ tier }}``, ``{{ balance }}``, ``{{ expiring_points }}``,
    ``{{ expiring_on }}``, ``{{ offer }}``, ``{{ voucher_code }}``, ``{{ card_number }}``.
    """

    campaign = models.ForeignKey(
        Campaign, verbose_name=_("campaign"), on_delete=models.CASCADE, related_name="variants"
    )
    code = models.CharField(_("variant"), max_length=2, help_text=_("A, B, C..."))
    weight = models.PositiveSmallIntegerField(
        _("share"), default=1, validators=[MinValueValidator(1)],
        help_text=_("Relative share of the non-control members: 1 and 1 split in halves."),
    )
    subject_en = models.CharField(_("subject (English)"), max_length=200, blank=True)
    body_en = models.TextField(_("text (English)"), blank=True)
    subject_ru = models.CharField(_("subject (Russian)"), max_length=200, blank=True)
    body_ru = models.TextField(_("text (Russian)"), blank=True)

    class Meta:
        verbose_name = _("variant")
        verbose_name_plural = _("variants")
        ordering = ["campaign", "code"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "code"], name="variant_code_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}/{self.code}"


class CampaignRecipient(models.Model):
    """One member a campaign targets: variant or control, and what happened to them.

    The audience is fixed in one set-based statement when the campaign launches (one row
    per member); the sending task works through the pending rows, so a worker killed in the
    middle resumes where it stopped and the delivery's idempotency key keeps a member from
    getting the message twice.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        DONE = "done", _("Sent")
        SKIPPED = "skipped", _("Skipped")
        CONTROL = "control", _("Control group: nothing sent")
        OVER_BUDGET = "over_budget", _("Budget used up")

    campaign = models.ForeignKey(
        Campaign, verbose_name=_("campaign"), on_delete=models.CASCADE,
        related_name="recipients",
    )
    member = models.ForeignKey(
        "members.Member", verbose_name=_("member"), on_delete=models.CASCADE,
        related_name="campaign_recipients",
    )
    variant = models.ForeignKey(
        CampaignVariant, verbose_name=_("variant"), null=True, blank=True,
        on_delete=models.CASCADE, related_name="recipients", db_index=False,
        help_text=_("Empty for the control group."),
    )
    is_control = models.BooleanField(_("control group"), default=False)
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.PENDING
    )
    occasion = models.CharField(
        _("occasion"), max_length=10, blank=True, default="",
        help_text=_("Triggered kinds: which trigger (a year for birthdays, a day for "
                    "reminders); empty for one-off campaigns."),
    )
    reference_at = models.DateTimeField(
        _("counted from"),
        help_text=_("Conversions are purchases from this time to the end of the attribution "
                    "window; the same time for the control group."),
    )
    window_ends_at = models.DateTimeField(_("counted until"))
    delivery = models.OneToOneField(
        "MessageDelivery", verbose_name=_("message"), null=True, blank=True,
        on_delete=models.SET_NULL, related_name="recipient",
    )
    points_entry_id = models.BigIntegerField(_("points entry"), null=True, blank=True)
    voucher_id = models.BigIntegerField(_("voucher"), null=True, blank=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("recipient")
        verbose_name_plural = _("recipients")
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "member", "occasion"], name="campaign_recipient_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["campaign", "status", "id"], name="recipient_status_idx"),
            models.Index(fields=["member", "-id"], name="recipient_member_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}: {self.member_id}"


class ContestDraw(models.Model):
    """A recorded prize draw: who was eligible, the seed and the winners (audit)."""

    campaign = models.OneToOneField(
        Campaign, verbose_name=_("campaign"), on_delete=models.PROTECT, related_name="draw"
    )
    seed = models.CharField(
        _("seed"), max_length=64,
        help_text=_("Random seed; with the same eligible list it picks the same winners."),
    )
    eligible_count = models.PositiveIntegerField(_("eligible members"))
    eligible_sha256 = models.CharField(
        _("SHA-256 of the eligible member ids"), max_length=64,
        help_text=_("Fingerprint of the sorted list of eligible member ids at the draw."),
    )
    winner_ids = models.JSONField(_("winners (member ids)"), default=list)
    drawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("drawn by"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="+",
    )
    drawn_at = models.DateTimeField(_("drawn at"), default=timezone.now)

    class Meta:
        verbose_name = _("contest draw")
        verbose_name_plural = _("contest draws")

    def __str__(self) -> str:
        return f"{self.campaign_id}: {len(self.winner_ids)} / {self.eligible_count}"


class CampaignResultSnapshot(models.Model):
    """A campaign's figures against its control as last computed, for the dashboards.

    Comparing every recipient with their purchases takes seconds for a campaign of half a
    million members; ``campaigns.tasks.campaign_results_refresh`` keeps these current
    (every 15 minutes while a campaign runs or its attribution windows are open).
    """

    campaign = models.OneToOneField(
        Campaign, verbose_name=_("campaign"), on_delete=models.CASCADE, primary_key=True,
        related_name="result_snapshot",
    )
    computed_at = models.DateTimeField(_("computed at"))
    # One list per group: variant id, is control, recipients, reached, converted, orders,
    # revenue (text), points spent: the rows of campaigns.selectors._results_sql.
    rows = models.JSONField(_("figures"), default=list)

    class Meta:
        verbose_name = _("campaign results")
        verbose_name_plural = _("campaign results")

    def __str__(self) -> str:
        return f"{self.campaign_id} @ {self.computed_at:%Y-%m-%d %H:%M}"


# ------------------------------------------------------------------ messages


class MessageDelivery(models.Model):
    """One message to one member, sent or refused (contract: surveys and campaigns use it).

    ``idempotency_key`` is unique: sending with a key already used returns this row and
    sends nothing. A refused message is recorded as ``skipped`` with the reason.
    """

    class Channel(models.TextChoices):
        EMAIL = "email", _("E-mail")
        SMS = "sms", _("SMS")

    class Status(models.TextChoices):
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        SKIPPED = "skipped", _("Not sent")
        FAILED = "failed", _("Failed")

    class SkipReason(models.TextChoices):
        NONE = "", "—"
        NO_CONSENT = "no_consent", _("No consent")
        UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")
        FREQUENCY_CAP = "frequency_cap", _("Over the weekly message cap")
        NO_ADDRESS = "no_address", _("No address")
        INACTIVE = "inactive", _("Member blocked or closed")

    member = models.ForeignKey(
        "members.Member", verbose_name=_("member"), on_delete=models.CASCADE,
        related_name="message_deliveries", db_index=False,
    )
    channel = models.CharField(_("channel"), max_length=5, choices=Channel.choices)
    purpose = models.CharField(
        _("purpose"), max_length=20,
        help_text=_("What sent it: campaign, survey, test, ..."),
    )
    campaign = models.ForeignKey(
        Campaign, verbose_name=_("campaign"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="deliveries", db_index=False,
    )
    address = models.CharField(_("sent to"), max_length=254, blank=True)
    subject = models.CharField(_("subject"), max_length=200, blank=True)
    text = models.TextField(_("text"), blank=True)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices)
    skip_reason = models.CharField(
        _("why not sent"), max_length=15, choices=SkipReason.choices, blank=True, default=""
    )
    error = models.CharField(_("error"), max_length=500, blank=True)
    counts_to_cap = models.BooleanField(
        _("counts towards the weekly cap"), default=True,
    )
    idempotency_key = models.CharField(_("idempotency key"), max_length=128)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("sent by"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages sent")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="delivery_key_unique"),
            models.CheckConstraint(
                condition=~Q(status="skipped") | ~Q(skip_reason=""),
                name="delivery_skip_has_reason",
            ),
        ]
        indexes = [
            models.Index(fields=["member", "-id"], name="delivery_member_idx"),
            models.Index(fields=["campaign", "status"], name="delivery_campaign_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} → {self.member_id}: {self.subject or self.purpose}"


class Unsubscribe(models.Model):
    """A member's opt-out of a channel, from the link in a message or by staff."""

    member = models.ForeignKey(
        "members.Member", verbose_name=_("member"), on_delete=models.CASCADE,
        related_name="+",
    )
    channel = models.CharField(_("channel"), max_length=5, choices=MessageDelivery.Channel.choices)
    source = models.CharField(
        _("how"), max_length=20, default="link",
        help_text=_("link: the unsubscribe link in a message; staff: by hand."),
    )
    delivery = models.ForeignKey(
        MessageDelivery, verbose_name=_("from message"), null=True, blank=True,
        on_delete=models.SET_NULL, related_name="+",
    )
    created_at = models.DateTimeField(_("unsubscribed at"), default=timezone.now)

    class Meta:
        verbose_name = _("unsubscribe")
        verbose_name_plural = _("unsubscribes")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["member", "channel"], name="unsubscribe_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.member_id} ✗ {self.channel}"
