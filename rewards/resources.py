"""django-import-export resources of the programme: the columns of each list's export.

See :mod:`members.resources`: ``personal_fields`` go only to users with
``members.export_personal_data``; the others get a pseudonymous key per member instead.
"""

from django.utils.translation import gettext_lazy as _
from import_export.fields import Field

from members.exports import ExportResource
from members.resources import MemberRowExportResource
from rewards.models import (
    EarningRule,
    MemberTier,
    Referral,
    Reward,
    StampRule,
    Tier,
    TierChange,
    Voucher,
)


class TierExportResource(ExportResource):
    class Meta:
        model = Tier
        fields = (
            "rank", "name", "threshold", "invitation_only", "grace_days", "earn_multiplier",
            "discount_percent", "free_delivery", "perks",
        )


class MemberTierExportResource(MemberRowExportResource):
    tier = Field(attribute="tier__name", column_name=_("tier"))

    class Meta:
        model = MemberTier
        fields = (
            "member", "member_card", "tier", "source", "since", "manual_until", "below_since",
        )


class TierChangeExportResource(MemberRowExportResource):
    from_tier = Field(attribute="from_tier__name", column_name=_("from"))
    to_tier = Field(attribute="to_tier__name", column_name=_("to"))
    actor = Field(attribute="actor__username", column_name=_("changed by"))

    class Meta:
        model = TierChange
        fields = (
            "id", "created_at", "member", "member_card", "from_tier", "to_tier", "reason",
            "note", "actor",
        )


class EarningRuleExportResource(ExportResource):
    category = Field(attribute="category__name", column_name=_("category"))

    class Meta:
        model = EarningRule
        fields = (
            "id", "name", "kind", "points_per_unit", "rounding", "min_purchase", "multiplier",
            "category", "sku", "valid_from", "valid_until", "is_active",
        )


class RewardExportResource(ExportResource):
    min_tier = Field(attribute="min_tier__name", column_name=_("lowest tier"))

    class Meta:
        model = Reward
        fields = (
            "id", "name", "kind", "points_cost", "value", "partner", "available_from",
            "available_until", "min_tier", "per_member_limit", "stock", "voucher_valid_days",
            "is_active",
        )


class VoucherExportResource(MemberRowExportResource):
    reward = Field(attribute="reward__name", column_name=_("reward"))
    issued_by = Field(attribute="issued_by__username", column_name=_("issued by"))

    class Meta:
        model = Voucher
        fields = (
            "code", "reward", "member", "member_card", "status", "source", "issued_at",
            "expires_at", "used_at", "cancelled_at", "cancel_reason", "fulfilment",
            "issued_by",
        )


class StampRuleExportResource(ExportResource):
    category = Field(attribute="category__name", column_name=_("category"))
    reward = Field(attribute="reward__name", column_name=_("voucher for"))

    class Meta:
        model = StampRule
        fields = ("id", "name", "every", "category", "reward", "starts_on", "is_active")


class ReferralExportResource(ExportResource):
    """Two members per row, each with their own key."""

    referrer = Field(attribute="referrer_id", column_name=_("referrer"))
    referrer_card = Field(attribute="referrer__card_number", column_name=_("referrer's card"))
    referred = Field(attribute="referred_id", column_name=_("new member"))
    referred_card = Field(attribute="referred__card_number", column_name=_("new member's card"))
    personal_fields = ("referrer", "referrer_card", "referred", "referred_card")
    member_keys = (
        ("referrer_id", _("referrer's key")),
        ("referred_id", _("new member's key")),
    )

    class Meta:
        model = Referral
        fields = (
            "id", "created_at", "referrer", "referrer_card", "referred", "referred_card",
            "status", "rewarded_at",
        )
