"""django-import-export resources of the members app: the columns of each list's export.

Each export resource lists, in order, the columns that an admin list exports
(:mod:`members.exports` streams them), with headers translated when the export runs.
``personal_fields`` go only to users with ``members.export_personal_data``; the others
get ``member_keys`` instead: a stable pseudonymous key per member.
"""

from django.utils.translation import gettext_lazy as _
from import_export.fields import Field

from members.exports import ExportResource
from members.models import (
    Member,
    MemberStatusChange,
    PointsAdjustment,
    PointsEntry,
    ProductCategory,
    Purchase,
    Store,
)

# The member a row belongs to: their id and card are personal, their key is not.
MEMBER_KEY = (("member_id", _("member key")),)
MEMBER_PERSONAL = ("member", "member_card")


def member_id_field() -> Field:
    return Field(attribute="member_id", column_name=_("member ID"))


def member_card_field() -> Field:
    return Field(attribute="member__card_number", column_name=_("card number"))


class MemberRowExportResource(ExportResource):
    """A list whose rows belong to a member: their id and card, or only their key."""

    member = member_id_field()
    member_card = member_card_field()
    personal_fields = MEMBER_PERSONAL
    member_keys = MEMBER_KEY


class MemberExportResource(ExportResource):
    """The member list: identity and contact data are personal."""

    personal_fields = (
        "id", "card_number", "first_name", "last_name", "email", "phone", "birth_date",
    )
    member_keys = (("id", _("member key")),)

    class Meta:
        model = Member
        fields = (
            "id", "card_number", "first_name", "last_name", "email", "phone", "birth_date",
            "gender", "city", "status", "points_balance", "enrolled_at", "source_channel",
            "last_purchase_at", "email_consent", "sms_consent",
        )


class MemberStatusChangeExportResource(MemberRowExportResource):
    actor = Field(attribute="actor__username", column_name=_("changed by"))

    class Meta:
        model = MemberStatusChange
        fields = (
            "id", "created_at", "member", "member_card", "from_status", "to_status",
            "reason", "actor",
        )


class PurchaseExportResource(MemberRowExportResource):
    store = Field(attribute="store__code", column_name=_("store"))

    class Meta:
        model = Purchase
        fields = (
            "id", "purchased_at", "store", "receipt_number", "member", "member_card",
            "channel", "total", "discount", "refunded_total", "item_count",
        )


class PointsEntryExportResource(MemberRowExportResource):
    """The points ledger, one row per movement."""

    actor = Field(attribute="actor__username", column_name=_("posted by"))
    purchase = Field(attribute="purchase_id", column_name=_("purchase"))

    class Meta:
        model = PointsEntry
        fields = (
            "id", "created_at", "member", "member_card", "kind", "amount", "balance_after",
            "reason", "actor", "reference", "purchase", "available_at",
        )


class PointsAdjustmentExportResource(MemberRowExportResource):
    requested_by = Field(attribute="requested_by__username", column_name=_("requested by"))
    decided_by = Field(
        attribute="decided_by__username", column_name=_("approved or rejected by")
    )

    class Meta:
        model = PointsAdjustment
        fields = (
            "id", "requested_at", "member", "member_card", "amount", "reason", "status",
            "requested_by", "decided_by", "decided_at", "decision_note",
        )


class StoreExportResource(ExportResource):
    class Meta:
        model = Store
        fields = ("code", "name", "city")


class ProductCategoryExportResource(ExportResource):
    class Meta:
        model = ProductCategory
        fields = ("code", "name")
