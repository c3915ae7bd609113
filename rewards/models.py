"""The programme: tiers, earning rules, stamps, the reward catalogue, vouchers, referrals.

Points move only through :func:`members.services.points_post`; these tables say why.
Programme-wide settings (tier window, bonuses, expiry) are on
:class:`members.models.ProgrammeSettings`, one page for managers.
"""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.models import Member, PointsEntry, ProductCategory, Purchase


class Tier(models.Model):
    """A level of the programme (Bronze, Silver, Gold ...) with what it takes and gives."""

    name = models.CharField(_("name"), max_length=50, unique=True)
    rank = models.PositiveSmallIntegerField(
        _("rank"),
        unique=True,
        help_text=_("0 is the entry tier every member starts in; higher is better."),
    )
    colour = models.CharField(
        _("colour"),
        max_length=7,
        default="#b08d57",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", _("Enter a colour such as #c0c0c0."))],
    )
    threshold = models.DecimalField(
        _("qualifies from"),
        max_digits=14,
        decimal_places=2,
        default=0,
        help_text=_(
            "Spend (or points earned, per the programme settings) within the "
            "qualification window that reaches this tier."
        ),
    )
    invitation_only = models.BooleanField(
        _("invitation only"),
        default=False,
        help_text=_("Never reached by spend: only set by hand by a manager."),
    )
    grace_days = models.PositiveIntegerField(
        _("grace period (days)"),
        default=30,
        help_text=_(
            "How long a member keeps this tier after falling below its threshold "
            "before the periodic evaluation moves them down."
        ),
    )
    # --- benefits
    earn_multiplier = models.DecimalField(
        _("earn multiplier"),
        max_digits=5,
        decimal_places=2,
        default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal("0"))],
    )
    discount_percent = models.DecimalField(
        _("discount %"),
        max_digits=5,
        decimal_places=2,
        default=0,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
    )
    free_delivery = models.BooleanField(_("free delivery"), default=False)
    perks = models.TextField(_("other perks"), blank=True)

    class Meta:
        verbose_name = _("tier")
        verbose_name_plural = _("tiers")
        ordering = ["rank"]
        constraints = [
            models.CheckConstraint(
                condition=Q(threshold__gte=0), name="tier_threshold_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(earn_multiplier__gte=0), name="tier_multiplier_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class MemberTier(models.Model):
    """A member's current tier (one row per member who has one)."""

    class Source(models.TextChoices):
        QUALIFIED = "qualified", _("Qualified")
        MANUAL = "manual", _("Set by hand")

    member = models.OneToOneField(
        Member,
        verbose_name=_("member"),
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="tier_status",
    )
    tier = models.ForeignKey(
        Tier, verbose_name=_("tier"), on_delete=models.PROTECT, related_name="+"
    )
    source = models.CharField(
        _("source"), max_length=10, choices=Source.choices, default=Source.QUALIFIED
    )
    since = models.DateTimeField(_("since"), default=timezone.now)
    manual_until = models.DateField(
        _("set by hand until"),
        null=True,
        blank=True,
        help_text=_("A tier set by hand holds until this date; then the evaluation applies."),
    )
    below_since = models.DateField(
        _("below threshold since"),
        null=True,
        blank=True,
        help_text=_(
            "First evaluation that found the member below the tier's threshold; the "
            "grace period counts from here."
        ),
    )

    class Meta:
        verbose_name = _("member tier")
        verbose_name_plural = _("member tiers")
        indexes = [models.Index(fields=["tier"], name="member_tier_tier_idx")]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.tier_id}"


class TierChange(models.Model):
    """One change of a member's tier and why (append-only history)."""

    class Reason(models.TextChoices):
        QUALIFIED = "qualified", _("Qualified")
        DOWNGRADED = "downgraded", _("Downgraded")
        MANUAL = "manual", _("Set by hand")
        MANUAL_ENDED = "manual_ended", _("Manual tier ended")
        ENROLLED = "enrolled", _("Enrolled")

    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.CASCADE, related_name="tier_changes"
    )
    from_tier = models.ForeignKey(
        Tier,
        verbose_name=_("from"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    to_tier = models.ForeignKey(
        Tier, verbose_name=_("to"), on_delete=models.PROTECT, related_name="+"
    )
    reason = models.CharField(_("reason"), max_length=15, choices=Reason.choices)
    note = models.CharField(_("note"), max_length=500, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("changed by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    created_at = models.DateTimeField(_("changed at"), default=timezone.now)

    class Meta:
        verbose_name = _("tier change")
        verbose_name_plural = _("tier history")
        ordering = ["-id"]
        indexes = [models.Index(fields=["member", "-id"], name="tier_change_member_idx")]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.from_tier_id} → {self.to_tier_id}"


class EarningRule(models.Model):
    """One rule of how purchases earn points; the engine combines the active ones."""

    class Kind(models.TextChoices):
        BASE = "base", _("Base rate")
        CATEGORY = "category", _("Category multiplier")
        SKU = "sku", _("SKU multiplier")
        EXCLUDE = "exclude", _("Excluded category")

    class Rounding(models.TextChoices):
        DOWN = "down", _("Round down")
        HALF_UP = "half_up", _("Round half up")
        UP = "up", _("Round up")

    name = models.CharField(_("name"), max_length=100, help_text=_("Shown to staff and members."))
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    points_per_unit = models.DecimalField(
        _("points per currency unit"),
        max_digits=8,
        decimal_places=4,
        null=True,
        blank=True,
        help_text=_("Base rate only: 0.05 = 5 points per 100 RUB."),
    )
    rounding = models.CharField(
        _("rounding"),
        max_length=10,
        choices=Rounding.choices,
        default=Rounding.DOWN,
        help_text=_("Base rate only: how the receipt's total points are rounded."),
    )
    min_purchase = models.DecimalField(
        _("minimum purchase"),
        max_digits=12,
        decimal_places=2,
        default=0,
        help_text=_("Base rate only: receipts below this amount earn nothing."),
    )
    multiplier = models.DecimalField(
        _("multiplier"),
        max_digits=6,
        decimal_places=2,
        null=True,
        blank=True,
        help_text=_("Category or SKU multiplier, e.g. 2 for double points."),
    )
    category = models.ForeignKey(
        ProductCategory,
        verbose_name=_("category"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    sku = models.CharField(_("SKU"), max_length=64, blank=True)
    valid_from = models.DateField(_("valid from"), null=True, blank=True)
    valid_until = models.DateField(_("valid until"), null=True, blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("earning rule")
        verbose_name_plural = _("earning rules")
        ordering = ["kind", "name"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="base")
                | Q(points_per_unit__isnull=False, points_per_unit__gte=0),
                name="earning_base_has_rate",
            ),
            models.CheckConstraint(
                condition=~Q(kind="category") | Q(category__isnull=False, multiplier__gte=0),
                name="earning_category_has_category_and_multiplier",
            ),
            models.CheckConstraint(
                condition=~Q(kind="sku") | (~Q(sku="") & Q(multiplier__gte=0)),
                name="earning_sku_has_sku_and_multiplier",
            ),
            models.CheckConstraint(
                condition=~Q(kind="exclude") | Q(category__isnull=False),
                name="earning_exclusion_has_category",
            ),
            models.CheckConstraint(
                condition=Q(valid_from__isnull=True)
                | Q(valid_until__isnull=True)
                | Q(valid_until__gte=models.F("valid_from")),
                name="earning_validity_in_order",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Reward(models.Model):
    """Something a member can get for points."""

    class Kind(models.TextChoices):
        PERCENT = "percent", _("Percentage discount voucher")
        FIXED = "fixed", _("Fixed discount voucher")
        DELIVERY = "delivery", _("Free delivery")
        GIFT = "gift", _("Free product or gift")
        PARTNER = "partner", _("Points to a partner")

    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    description = models.TextField(_("description"), blank=True)
    points_cost = models.PositiveIntegerField(_("points cost"), validators=[MinValueValidator(1)])
    value = models.DecimalField(
        _("value"),
        max_digits=12,
        decimal_places=2,
        default=0,
        help_text=_(
            "Percent for a percentage voucher, money for a fixed one, partner points "
            "for a partner conversion."
        ),
    )
    partner = models.CharField(_("partner"), max_length=100, blank=True)
    available_from = models.DateField(_("available from"), null=True, blank=True)
    available_until = models.DateField(_("available until"), null=True, blank=True)
    min_tier = models.ForeignKey(
        Tier,
        verbose_name=_("lowest tier"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text=_("Only members in this tier or above may redeem it."),
    )
    per_member_limit = models.PositiveIntegerField(
        _("limit per member"),
        null=True,
        blank=True,
        help_text=_("How many times one member may redeem it (cancelled ones do not count)."),
    )
    stock = models.PositiveIntegerField(
        _("stock"),
        null=True,
        blank=True,
        help_text=_("Empty: unlimited."),
    )
    voucher_valid_days = models.PositiveIntegerField(_("voucher valid for (days)"), default=90)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("reward")
        verbose_name_plural = _("reward catalogue")
        ordering = ["points_cost", "name"]
        constraints = [
            models.CheckConstraint(condition=Q(points_cost__gt=0), name="reward_cost_positive"),
            models.CheckConstraint(
                condition=Q(stock__isnull=True) | Q(stock__gte=0), name="reward_stock_not_negative"
            ),
            models.CheckConstraint(
                condition=~Q(kind="percent") | Q(value__gt=0, value__lte=100),
                name="reward_percent_in_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Voucher(models.Model):
    """A reward issued to a member, with a code that cannot be guessed."""

    class Status(models.TextChoices):
        ISSUED = "issued", _("Issued")
        USED = "used", _("Used")
        EXPIRED = "expired", _("Expired")
        CANCELLED = "cancelled", _("Cancelled")

    class Source(models.TextChoices):
        REDEMPTION = "redemption", _("Redeemed for points")
        STAMP = "stamp", _("Stamp card")
        CAMPAIGN = "campaign", _("Campaign")

    class Fulfilment(models.TextChoices):
        NONE = "", _("Not a physical gift")
        TO_SHIP = "to_ship", _("To ship")
        SHIPPED = "shipped", _("Shipped")
        DELIVERED = "delivered", _("Delivered")

    code = models.CharField(_("code"), max_length=20, unique=True)
    reward = models.ForeignKey(
        Reward, verbose_name=_("reward"), on_delete=models.PROTECT, related_name="vouchers"
    )
    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="vouchers"
    )
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.ISSUED
    )
    source = models.CharField(
        _("source"), max_length=10, choices=Source.choices, default=Source.REDEMPTION
    )
    issued_at = models.DateTimeField(_("issued at"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires at"))
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True)
    cancel_reason = models.CharField(_("cancellation reason"), max_length=500, blank=True)
    fulfilment = models.CharField(
        _("fulfilment"), max_length=10, choices=Fulfilment.choices, blank=True, default=""
    )
    redemption_entry = models.OneToOneField(
        PointsEntry,
        verbose_name=_("points debited"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="voucher",
    )
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("issued by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    purchase = models.ForeignKey(
        Purchase,
        verbose_name=_("earned by purchase"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    idempotency_key = models.CharField(_("idempotency key"), max_length=128, unique=True)

    class Meta:
        verbose_name = _("voucher")
        verbose_name_plural = _("vouchers")
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["member", "-id"], name="voucher_member_idx"),
            models.Index(fields=["status", "expires_at"], name="voucher_status_expiry_idx"),
            models.Index(fields=["reward", "member"], name="voucher_reward_member_idx"),
        ]

    def __str__(self) -> str:
        return self.code


class StampRule(models.Model):
    """Every Nth qualifying purchase earns a voucher: "every 10th coffee is free"."""

    name = models.CharField(_("name"), max_length=100)
    every = models.PositiveIntegerField(_("every Nth purchase"), validators=[MinValueValidator(2)])
    category = models.ForeignKey(
        ProductCategory,
        verbose_name=_("category"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text=_("Only purchases with a line in this category count. Empty: every purchase."),
    )
    reward = models.ForeignKey(
        Reward, verbose_name=_("voucher for"), on_delete=models.PROTECT, related_name="+"
    )
    starts_on = models.DateField(_("counts purchases from"), default=timezone.localdate)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("stamp rule")
        verbose_name_plural = _("stamp rules")
        constraints = [
            models.CheckConstraint(condition=Q(every__gte=2), name="stamp_every_at_least_two")
        ]

    def __str__(self) -> str:
        return self.name


class Referral(models.Model):
    """A member who brought another; both earn a bonus after the new one's first purchase."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for the first purchase")
        REWARDED = "rewarded", _("Bonuses posted")

    referrer = models.ForeignKey(
        Member, verbose_name=_("referrer"), on_delete=models.PROTECT, related_name="+"
    )
    referred = models.OneToOneField(
        Member, verbose_name=_("new member"), on_delete=models.PROTECT, related_name="referral"
    )
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    created_at = models.DateTimeField(_("referred at"), default=timezone.now)
    rewarded_at = models.DateTimeField(_("rewarded at"), null=True, blank=True)

    class Meta:
        verbose_name = _("referral")
        verbose_name_plural = _("referrals")
        ordering = ["-id"]
        indexes = [models.Index(fields=["referrer", "created_at"], name="referral_referrer_idx")]
        constraints = [
            models.CheckConstraint(
                condition=~Q(referrer=models.F("referred")), name="referral_not_self"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.referrer_id} → {self.referred_id}"
