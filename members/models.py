"""Members, their purchases and their points account.

The points ledger lives here, beside the member it belongs to, so the member page and the
``members.adjust_points`` family of permissions need no import from a higher app; the
programme rules in ``rewards`` post through :func:`members.services.points_post`.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Concat, Upper
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Store(models.Model):
    """A shop, web store or app where purchases are made."""

    code = models.CharField(
        _("code"), max_length=32, unique=True,
        help_text=_("Short code used by the cash registers, e.g. MSK-001."),
    )
    name = models.CharField(_("name"), max_length=200)
    city = models.CharField(_("city"), max_length=100, blank=True)

    class Meta:
        verbose_name = _("store")
        verbose_name_plural = _("stores")
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} · {self.name}"


class ProductCategory(models.Model):
    """A product category that purchase lines, earning rules and reports refer to."""

    code = models.CharField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=200)

    class Meta:
        verbose_name = _("product category")
        verbose_name_plural = _("product categories")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Member(models.Model):
    """A customer enrolled in the loyalty programme."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        BLOCKED = "blocked", _("Blocked")
        CLOSED = "closed", _("Closed")

    class Gender(models.TextChoices):
        UNSPECIFIED = "", _("Not specified")
        FEMALE = "female", _("Female")
        MALE = "male", _("Male")

    class Channel(models.TextChoices):
        STORE = "store", _("In store")
        ONLINE = "online", _("Web site")
        APP = "app", _("Mobile app")
        REFERRAL = "referral", _("Referral")
        CALL_CENTRE = "call_centre", _("Call centre")
        IMPORT = "import", _("Imported")

    # --- identity
    card_number = models.CharField(
        _("card number"), max_length=32, unique=True,
        help_text=_("The number printed on the loyalty card or shown in the app."),
    )
    first_name = models.CharField(_("first name"), max_length=100)
    last_name = models.CharField(_("last name"), max_length=100, blank=True)
    # Upper-cased "first last" for the trigram index behind name search.
    search_name = models.GeneratedField(
        expression=Upper(Concat("first_name", models.Value(" "), "last_name")),
        output_field=models.CharField(max_length=201),
        db_persist=True,
        verbose_name=_("search name"),
    )
    email = models.EmailField(
        _("e-mail"), blank=True,
        help_text=_("Stored in lower case so that searches match any spelling."),
    )
    phone = models.CharField(
        _("phone"), max_length=20, blank=True,
        help_text=_("Stored as digits with the country code, e.g. 79123456789; "
                    "type it in any common format."),
    )
    birth_date = models.DateField(_("birth date"), null=True, blank=True)
    gender = models.CharField(
        _("gender"), max_length=10, choices=Gender.choices, blank=True, default=""
    )
    city = models.CharField(_("city"), max_length=100, blank=True)
    # The language messages, survey pages and e-mails to this member are written in.
    language = models.CharField(
        _("language"), max_length=10, choices=settings.LANGUAGES, default="ru",
        help_text=_("Messages, e-mails and survey pages reach the member in this language."),
    )

    # --- enrolment and status
    enrolled_at = models.DateTimeField(_("enrolled at"), default=timezone.now, db_index=True)
    source_channel = models.CharField(
        _("source channel"), max_length=20, choices=Channel.choices, default=Channel.STORE,
        help_text=_("Where the member joined the programme."),
    )
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE,
        help_text=_("A blocked or closed member can neither earn nor spend points. "
                    "Change it with the Block / Unblock buttons, which ask for a reason."),
    )
    referred_by = models.ForeignKey(
        "self", verbose_name=_("referred by"), null=True, blank=True,
        on_delete=models.SET_NULL, related_name="referrals",
    )

    # --- consent
    email_consent = models.BooleanField(_("e-mail consent"), default=False)
    email_consent_at = models.DateTimeField(
        _("e-mail consent changed at"), null=True, blank=True,
        help_text=_("When the consent was last given or withdrawn."),
    )
    sms_consent = models.BooleanField(_("SMS consent"), default=False)
    sms_consent_at = models.DateTimeField(
        _("SMS consent changed at"), null=True, blank=True,
        help_text=_("When the consent was last given or withdrawn."),
    )

    # --- caches maintained by the services, never edited by hand
    points_balance = models.IntegerField(
        _("points balance"), default=0, editable=False,
        help_text=_("Cache of the sum of the member's ledger; only the ledger service "
                    "writes it. Negative only for a debt left by a return."),
    )
    last_purchase_at = models.DateTimeField(
        _("last purchase"), null=True, blank=True, editable=False
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("member")
        verbose_name_plural = _("members")
        ordering = ["-id"]
        permissions = [
            ("adjust_points", _("Can adjust a member's points with a reason")),
            ("approve_adjustment", _("Can approve another person's points adjustment")),
            ("export_personal_data", _("Can export members' personal data")),
            ("erase_member", _("Can erase a member's personal data on request")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(card_number=""), name="member_card_number_not_blank"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-id"], name="member_status_id_idx"),
            models.Index(fields=["last_purchase_at"], name="member_last_purchase_idx"),
            # Searches match e-mail and phone exactly (normalised): plain indexes, without
            # the LIKE indexes db_index=True adds on PostgreSQL, which every purchase
            # (a new version of the member row) would also write.
            models.Index(fields=["email"], name="member_email_idx"),
            models.Index(fields=["phone"], name="member_phone_idx"),
        ]

    def __str__(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return f"{name} ({self.card_number})"

    def get_absolute_url(self) -> str:
        return reverse("admin:members_member_change", args=[self.pk])

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def can_move_points(self) -> bool:
        """Return whether the member may earn or spend points now."""
        return self.status == self.Status.ACTIVE


class MemberStatusChange(models.Model):
    """One change of a member's status, with who did it and why (append-only)."""

    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.PROTECT,
        related_name="status_changes",
    )
    from_status = models.CharField(_("from"), max_length=10, choices=Member.Status.choices)
    to_status = models.CharField(_("to"), max_length=10, choices=Member.Status.choices)
    reason = models.TextField(_("reason"))
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("changed by"), null=True,
        on_delete=models.PROTECT, related_name="+",
    )
    created_at = models.DateTimeField(_("changed at"), default=timezone.now)

    class Meta:
        verbose_name = _("status change")
        verbose_name_plural = _("status changes")
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="status_change_reason_required"),
        ]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.from_status} → {self.to_status}"


class Purchase(models.Model):
    """A receipt from a store, with or without a member (non-members count for comparisons)."""

    class Channel(models.TextChoices):
        STORE = "store", _("In store")
        ONLINE = "online", _("Web site")
        APP = "app", _("Mobile app")

    # No index of their own: (store, receipt number) and (member, time) lead with them,
    # and every index more is written by each receipt recorded.
    store = models.ForeignKey(
        Store, verbose_name=_("store"), on_delete=models.PROTECT, related_name="purchases",
        db_index=False,
    )
    receipt_number = models.CharField(
        _("receipt number"), max_length=64,
        help_text=_("Unique within the store; the same receipt is never counted twice."),
    )
    member = models.ForeignKey(
        Member, verbose_name=_("member"), null=True, blank=True, on_delete=models.PROTECT,
        related_name="purchases", db_index=False,
    )
    channel = models.CharField(
        _("channel"), max_length=10, choices=Channel.choices, default=Channel.STORE
    )
    purchased_at = models.DateTimeField(_("purchased at"), default=timezone.now)
    total = models.DecimalField(
        _("total"), max_digits=12, decimal_places=2,
        help_text=_("Amount paid, after discounts, in the programme currency."),
    )
    discount = models.DecimalField(_("discount"), max_digits=12, decimal_places=2, default=0)
    item_count = models.PositiveIntegerField(_("items"), default=0)
    refunded_total = models.DecimalField(
        _("refunded"), max_digits=12, decimal_places=2, default=0, editable=False,
        help_text=_("Sum of the refunds of this receipt; its points are reversed in proportion."),
    )
    created_at = models.DateTimeField(_("recorded at"), auto_now_add=True)

    class Meta:
        verbose_name = _("purchase")
        verbose_name_plural = _("purchases")
        ordering = ["-purchased_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["store", "receipt_number"], name="purchase_receipt_unique_per_store"
            ),
            models.CheckConstraint(condition=Q(total__gte=0), name="purchase_total_not_negative"),
            models.CheckConstraint(
                condition=Q(discount__gte=0), name="purchase_discount_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(refunded_total__gte=0, refunded_total__lte=models.F("total")),
                name="purchase_refund_within_total",
            ),
        ]
        indexes = [
            # The amounts ride along so a member's spend in a window (the tier check of
            # every receipt recorded) is read from the index alone.
            models.Index(fields=["member", "-purchased_at"], name="purchase_member_time_idx",
                         include=["total", "refunded_total"]),
            models.Index(fields=["purchased_at"], name="purchase_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.store.code} #{self.receipt_number}"


class PurchaseRefund(models.Model):
    """A full or partial return of a receipt; the points it earned are reversed in proportion."""

    purchase = models.ForeignKey(
        Purchase, verbose_name=_("purchase"), on_delete=models.PROTECT, related_name="refunds"
    )
    amount = models.DecimalField(_("amount refunded"), max_digits=12, decimal_places=2)
    reason = models.CharField(_("reason"), max_length=500, blank=True)
    refund_key = models.CharField(
        _("refund reference"), max_length=128, unique=True,
        help_text=_("The refund receipt's number from the POS; the same refund twice counts once."),
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("recorded by"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="+",
    )
    entry = models.OneToOneField(
        "PointsEntry", verbose_name=_("points returned"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="refund",
    )
    created_at = models.DateTimeField(_("refunded at"), default=timezone.now)

    class Meta:
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.purchase} −{self.amount}"


class PurchaseLine(models.Model):
    """One line of a receipt."""

    purchase = models.ForeignKey(
        Purchase, verbose_name=_("purchase"), on_delete=models.CASCADE, related_name="lines"
    )
    sku = models.CharField(_("SKU"), max_length=64)
    category = models.ForeignKey(
        ProductCategory, verbose_name=_("category"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="+",
    )
    quantity = models.DecimalField(_("quantity"), max_digits=10, decimal_places=3, default=1)
    amount = models.DecimalField(_("amount"), max_digits=12, decimal_places=2)

    class Meta:
        verbose_name = _("purchase line")
        verbose_name_plural = _("purchase lines")
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="purchase_line_quantity_positive"
            ),
            models.CheckConstraint(
                condition=Q(amount__gte=0), name="purchase_line_amount_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} × {self.quantity}"


class PointsEntry(models.Model):
    """One movement of points: the append-only ledger.

    Invariants: rows are never updated or deleted (a PostgreSQL trigger refuses it, and so
    does the admin); ``amount`` is never zero; ``balance_after`` is the member's balance
    right after this row; the sum of a member's amounts equals ``Member.points_balance``;
    ``idempotency_key`` makes a second delivery of the same movement a no-op.
    """

    class Kind(models.TextChoices):
        ACCRUAL = "accrual", _("Purchase accrual")
        REDEMPTION = "redemption", _("Redemption")
        ADJUSTMENT = "adjustment", _("Manual adjustment")
        REFERRAL = "referral", _("Referral bonus")
        WELCOME = "welcome", _("Welcome bonus")
        BIRTHDAY = "birthday", _("Birthday bonus")
        CAMPAIGN = "campaign", _("Campaign bonus")
        GOODWILL = "goodwill", _("Goodwill")
        EXPIRY = "expiry", _("Expiry")
        REVERSAL = "reversal", _("Reversal")
        RETURN = "return", _("Return")
        OPENING = "opening", _("Opening balance")

    # Kinds a person posts by hand: they must say why.
    MANUAL_KINDS = (Kind.ADJUSTMENT, Kind.REVERSAL, Kind.GOODWILL)

    # Indexed by points_entry_member_idx (member, -id); a second index costs every posting.
    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.PROTECT,
        related_name="points_entries", db_index=False,
    )
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    amount = models.IntegerField(_("points"), help_text=_("Signed: positive adds points."))
    balance_after = models.IntegerField(_("balance after"))
    reason = models.CharField(_("reason"), max_length=500, blank=True)
    # No index: nothing looks the ledger up by who posted, and each index costs every
    # posting (only deleting a user who posted, which PROTECT refuses, scans for it).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("posted by"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="+", db_index=False,
        help_text=_("Empty when the system posted it."),
    )
    purchase = models.ForeignKey(
        Purchase, verbose_name=_("purchase"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="points_entries",
    )
    # Reversed at most once (points_entry_reverses_once): a partial unique index, as
    # nearly every row reverses nothing and need not be written into it.
    reverses = models.ForeignKey(
        "self", verbose_name=_("reverses"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="reversed_by", db_index=False,
    )
    reference = models.CharField(
        _("source"), max_length=64, blank=True,
        help_text=_("What the movement came from, e.g. adjustment:12 or redemption:40."),
    )
    idempotency_key = models.CharField(_("idempotency key"), max_length=128)
    created_at = models.DateTimeField(_("posted at"), default=timezone.now)
    available_at = models.DateTimeField(
        _("available from"), null=True, blank=True,
        help_text=_("Points of an accrual are pending, and cannot be spent, until this time "
                    "(the return window). Empty: available at once."),
    )
    details = models.JSONField(
        _("how it was computed"), default=list, blank=True,
        help_text=_("The rules that produced an accrual, step by step, so staff can explain it."),
    )

    class Meta:
        verbose_name = _("points entry")
        verbose_name_plural = _("points ledger")
        ordering = ["-id"]
        constraints = [
            # A constraint, not unique=True: no extra LIKE index to maintain on every posting.
            models.UniqueConstraint(fields=["idempotency_key"], name="points_entry_key_unique"),
            models.UniqueConstraint(
                fields=["reverses"], condition=Q(reverses__isnull=False),
                name="points_entry_reverses_once",
            ),
            models.CheckConstraint(condition=~Q(amount=0), name="points_entry_amount_not_zero"),
            models.CheckConstraint(
                condition=~Q(kind__in=["adjustment", "reversal", "goodwill"]) | ~Q(reason=""),
                name="points_entry_manual_reason_required",
            ),
        ]
        indexes = [
            models.Index(fields=["member", "-id"], name="points_entry_member_idx"),
            models.Index(fields=["created_at"], name="points_entry_time_idx"),
            # Pending points per member: only accruals inside a return window have a date.
            models.Index(
                fields=["member", "available_at"], name="points_entry_pending_idx",
                condition=Q(available_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount:+d}"

    def save(self, *args, **kwargs):
        # Append-only: an existing row is corrected by a reversal, never rewritten.
        if self.pk is not None and not self._state.adding:
            raise ValueError("Points entries are append-only; post a reversal instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Points entries are append-only; post a reversal instead.")


class PointsAdjustment(models.Model):
    """A manual adjustment asked for by a person; large ones wait for a second person."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for approval")
        APPLIED = "applied", _("Applied")
        REJECTED = "rejected", _("Rejected")

    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="adjustments"
    )
    amount = models.IntegerField(_("points"), help_text=_("Signed: negative takes points away."))
    reason = models.CharField(_("reason"), max_length=500)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("requested by"), on_delete=models.PROTECT,
        related_name="+",
    )
    requested_at = models.DateTimeField(_("requested at"), default=timezone.now)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("approved or rejected by"), null=True,
        blank=True, on_delete=models.PROTECT, related_name="+",
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decision_note = models.CharField(_("decision note"), max_length=500, blank=True)
    entry = models.OneToOneField(
        PointsEntry, verbose_name=_("ledger entry"), null=True, blank=True,
        on_delete=models.PROTECT, related_name="adjustment",
    )
    idempotency_key = models.CharField(_("idempotency key"), max_length=128, unique=True)

    class Meta:
        verbose_name = _("points adjustment")
        verbose_name_plural = _("points adjustments")
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="adjustment_amount_not_zero"),
            models.CheckConstraint(condition=~Q(reason=""), name="adjustment_reason_required"),
            # Maker-checker: whoever asked cannot be the one who decides.
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=models.F("requested_by")),
                name="adjustment_checker_is_not_maker",
            ),
        ]
        indexes = [models.Index(fields=["status", "-id"], name="adjustment_status_idx")]

    def __str__(self) -> str:
        return f"{self.amount:+d} → {self.member_id} ({self.get_status_display()})"


class TierBasis(models.TextChoices):
    SPEND = "spend", _("Money spent")
    POINTS = "points", _("Points earned")


class TierWindow(models.TextChoices):
    ROLLING = "rolling", _("Rolling N months")
    CALENDAR_YEAR = "calendar_year", _("Calendar year")
    LIFETIME = "lifetime", _("Lifetime")


class DowngradePolicy(models.TextChoices):
    ONE_STEP = "one_step", _("One tier at a time")
    TO_SUPPORTED = "to_supported", _("Straight to the tier the spend supports")


class BirthdayTiming(models.TextChoices):
    DAY = "day", _("On the birthday")
    WEEK = "week", _("In the birthday week")
    MONTH = "month", _("In the birthday month")


class ProgrammeSettings(models.Model):
    """Programme-wide settings kept in the database so managers change them in the admin.

    There is exactly one row (id 1); :func:`members.selectors.programme_settings_get`
    creates it with the defaults on first use.
    """

    adjustment_approval_threshold = models.PositiveIntegerField(
        _("approval threshold (points)"), default=1000,
        help_text=_("A manual adjustment of more than this many points, up or down, waits "
                    "for a second person with the approval permission."),
    )
    earn_rate = models.DecimalField(
        _("points per currency unit"), max_digits=8, decimal_places=4, default=Decimal("0.05"),
        help_text=_("Base points earned per unit of money paid, rounded down "
                    "(0.05 = 5 points per 100 RUB)."),
    )
    return_window_days = models.PositiveIntegerField(
        _("return window (days)"), default=14,
        help_text=_("Points earned on a purchase stay pending this many days, while the "
                    "purchase can still be returned, before they can be spent. 0: at once."),
    )
    points_expiry_months = models.PositiveIntegerField(
        _("points expire after (months)"), default=12,
        help_text=_("Points expire this many months after they were earned, oldest first. "
                    "0: points never expire."),
    )
    point_value = models.DecimalField(
        _("value of one point"), max_digits=10, decimal_places=4, default=Decimal("1"),
        help_text=_("What one point costs the business in the programme currency; used for "
                    "the outstanding points liability."),
    )

    # --- tiers
    tier_basis = models.CharField(
        _("tiers qualify on"), max_length=10, choices=TierBasis.choices,
        default=TierBasis.SPEND,
    )
    tier_window = models.CharField(
        _("qualification window"), max_length=15, choices=TierWindow.choices,
        default=TierWindow.ROLLING,
    )
    tier_window_months = models.PositiveIntegerField(
        _("rolling window (months)"), default=12,
        help_text=_("Used with the rolling window: spend or points of the last N months count."),
    )
    tier_downgrade_policy = models.CharField(
        _("downgrade policy"), max_length=15, choices=DowngradePolicy.choices,
        default=DowngradePolicy.ONE_STEP,
    )

    # --- bonuses
    welcome_points = models.PositiveIntegerField(
        _("welcome bonus (points)"), default=100, help_text=_("Given on enrolment. 0: none.")
    )
    birthday_points = models.PositiveIntegerField(
        _("birthday bonus (points)"), default=200, help_text=_("Given once a year. 0: none.")
    )
    birthday_timing = models.CharField(
        _("birthday bonus is given"), max_length=10, choices=BirthdayTiming.choices,
        default=BirthdayTiming.WEEK,
    )
    referral_referrer_points = models.PositiveIntegerField(
        _("referral bonus for the referrer"), default=300
    )
    referral_referred_points = models.PositiveIntegerField(
        _("referral bonus for the new member"), default=200
    )
    referral_min_purchase = models.DecimalField(
        _("referral: minimum first purchase"), max_digits=12, decimal_places=2,
        default=Decimal("500"),
        help_text=_("Both bonuses are posted once the new member's first purchase of at least "
                    "this amount is recorded."),
    )
    referral_monthly_limit = models.PositiveIntegerField(
        _("referrals per member per month"), default=5,
        help_text=_("More referrals than this in a calendar month are refused."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("programme settings")
        verbose_name_plural = _("programme settings")
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="programme_settings_single_row"),
        ]

    def __str__(self) -> str:
        return str(_("Programme settings"))


class ExportJob(models.Model):
    """One export of a list or report: the export log, and a background job for big ones."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "XLSX"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("exported by"), on_delete=models.PROTECT,
        related_name="+",
    )
    source = models.CharField(
        _("what"), max_length=100, help_text=_("The list or report, e.g. members.member."),
    )
    query = models.TextField(
        _("filters"), blank=True, help_text=_("The filters and search as they were on screen."),
    )
    file_format = models.CharField(_("format"), max_length=4, choices=Format.choices)
    personal_data = models.BooleanField(
        _("with personal data"), default=False,
        help_text=_("False: contact data left out and members pseudonymised."),
    )
    language = models.CharField(_("language"), max_length=10, default="en")
    status = models.CharField(_("status"), max_length=10, choices=Status.choices,
                              default=Status.QUEUED)
    rows_total = models.PositiveIntegerField(_("rows to export"), null=True, blank=True)
    rows_done = models.PositiveIntegerField(_("rows exported"), default=0)
    file = models.FileField(_("file"), upload_to="exports/%Y/%m/", blank=True)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("started at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("export")
        verbose_name_plural = _("exports")
        ordering = ["-id"]
        indexes = [models.Index(fields=["user", "-id"], name="export_job_user_idx")]

    def __str__(self) -> str:
        return f"{self.source} ({self.get_file_format_display()}, {self.created_at:%Y-%m-%d})"


class ImportJob(models.Model):
    """One uploaded file: its preview, the decision, the run and its report."""

    class Status(models.TextChoices):
        UPLOADED = "uploaded", _("Uploaded")
        PREVIEWING = "previewing", _("Checking")
        PREVIEWED = "previewed", _("Checked: waiting for confirmation")
        IMPORTING = "importing", _("Importing")
        DONE = "done", _("Imported")
        FAILED = "failed", _("Failed")
        REJECTED = "rejected", _("Rejected: nothing imported")

    kind = models.CharField(_("what is imported"), max_length=40)
    file = models.FileField(_("file"), upload_to="imports/%Y/%m/")
    original_name = models.CharField(_("file name"), max_length=255)
    file_size = models.PositiveBigIntegerField(_("size (bytes)"), default=0)
    file_sha256 = models.CharField(_("SHA-256"), max_length=64, db_index=True)
    skip_bad_rows = models.BooleanField(
        _("skip bad rows"), default=False,
        help_text=_("Import the good rows and give back the rejected ones in a file. "
                    "Off: one bad row and nothing is imported."),
    )
    status = models.CharField(_("status"), max_length=12, choices=Status.choices,
                              default=Status.UPLOADED)
    rows_total = models.PositiveIntegerField(_("rows"), null=True, blank=True)
    rows_done = models.PositiveIntegerField(_("rows processed"), default=0)
    counts = models.JSONField(
        _("counts"), default=dict, blank=True,
        help_text=_("new, updated, unchanged and error rows."),
    )
    errors = models.JSONField(
        _("errors"), default=list, blank=True,
        help_text=_("The first errors: row, column and reason."),
    )
    message = models.TextField(_("message"), blank=True)
    rejected_file = models.FileField(_("rejected rows"), upload_to="imports/%Y/%m/", blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("uploaded by"), on_delete=models.PROTECT,
        related_name="+",
    )
    created_at = models.DateTimeField(_("uploaded at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("import")
        verbose_name_plural = _("imports")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.original_name}"


class ConfigChange(models.Model):
    """One change to the programme's configuration: who, when, what, before and after.

    Written by :mod:`members.audit` from model signals for the models listed in
    ``settings.LOYALTY_AUDIT_MODELS`` (tiers, rules, rewards, campaigns, surveys,
    settings, users and groups), whether the change came from a page, a service or the
    shell. Rows are only ever added: nobody edits or deletes the record of a change.
    """

    class Action(models.TextChoices):
        CREATE = "create", _("Created")
        UPDATE = "update", _("Changed")
        DELETE = "delete", _("Deleted")

    changed_at = models.DateTimeField(_("changed at"), default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("changed by"), null=True, blank=True,
        on_delete=models.SET_NULL, related_name="+",
        help_text=_("Empty when the system made the change (a task, a command, the shell)."),
    )
    # Kept as text too, so the record still names the person after their login is deleted.
    actor_name = models.CharField(_("changed by (name)"), max_length=150, blank=True)
    source = models.CharField(
        _("source"), max_length=300, blank=True,
        help_text=_("The page (method and address) the change was made from; empty for "
                    "tasks, commands and the shell."),
    )
    content_type = models.ForeignKey(
        "contenttypes.ContentType", verbose_name=_("kind of object"), on_delete=models.PROTECT,
        related_name="+",
    )
    object_id = models.CharField(_("object id"), max_length=64, db_index=True)
    object_repr = models.CharField(_("object"), max_length=200)
    action = models.CharField(_("action"), max_length=10, choices=Action.choices)
    changed_fields = models.JSONField(_("changed fields"), default=list, blank=True)
    before = models.JSONField(
        _("before"), null=True, blank=True,
        help_text=_("The changed fields' values before the change (every field for a "
                    "deletion)."),
    )
    after = models.JSONField(
        _("after"), null=True, blank=True,
        help_text=_("The changed fields' values after the change (every field for a "
                    "creation)."),
    )

    class Meta:
        verbose_name = _("configuration change")
        verbose_name_plural = _("configuration changes")
        ordering = ["-changed_at", "-id"]
        # The log is read, never written by hand.
        default_permissions = ("view",)
        indexes = [models.Index(fields=["content_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.get_action_display()}: {self.object_repr}"
