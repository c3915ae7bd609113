"""A member's rights over their data: erasure on request, and a copy of everything held.

- :func:`member_erase` anonymises the member's personal data (name, contact data, birth
  date, city, card number, consents) and closes the membership, in one transaction. The
  ledger, purchases, vouchers and tiers keep their rows and amounts, so every balance and
  total stays what it was and the ledger invariant still holds. Who erased, why and when
  is kept in the admin log and the member's status history; neither holds the erased
  values.
- :func:`member_data_export` returns one JSON file with everything held about a member:
  profile and consents, ledger, purchases with lines and refunds, adjustments, status
  history, and every row of any other table that points at the member (vouchers, tiers,
  referrals, and whatever the apps above add), so a new table cannot be forgotten.

Apps above ``members`` add their own parts (e.g. messages sent, survey answers) with
:func:`privacy_part_register` from ``AppConfig.ready()``: an export function, and an
erase function for the personal data they keep (an e-mail copied into a message log,
a survey's free-text comment).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.apps import apps
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.models import (
    Member,
    MemberStatusChange,
    PointsAdjustment,
    PointsEntry,
    Purchase,
    PurchaseLine,
    PurchaseRefund,
)
from members.services import PointsRefused

ERASE_PERMISSION = "members.erase_member"
EXPORT_PERMISSION = "members.export_personal_data"

# What an erased member's row holds instead of their data. The card number stays unique
# (the column is) and says what happened; the first name is what lists show.
ERASED_CARD_PREFIX = "ERASED-"
ERASED_FIRST_NAME = "Erased"
# Kept in the member's status history: a fixed text, never the request's wording.
ERASED_STATUS_REASON = "Personal data erased on request"
# The format and version of the export file, for whoever reads it later.
EXPORT_FORMAT = "loyalty-member-data/1"

ERASE_NOT_ALLOWED = _("You are not allowed to erase members' personal data.")
ERASE_REASON_REQUIRED = _(
    "Give a reason, e.g. the number of the member's request: every erasure must say why."
)
ERASE_ALREADY_DONE = _("This member's personal data was already erased on %(date)s.")
# Reasons are staff text kept for years: long ones are refused rather than cut.
ERASE_REASON_MAX = 500
ERASE_REASON_TOO_LONG = _("Keep the reason under %(max)s characters.")


class ErasureRefused(PointsRefused):
    """An erasure the rules refuse; nothing was written (message, code and params as
    every refusal of the members services)."""


# ------------------------------------------------------------------ registry


@dataclass(frozen=True)
class PrivacyPart:
    """One part of what is held about a member, registered by the app that holds it.

    ``export(member_id)`` returns JSON-serialisable data (a list of rows, usually);
    ``erase(member_id)`` anonymises that app's personal data about the member and runs
    inside the erasure's transaction (it must not touch points or money). ``models``
    names the tables (``"app_label.ModelName"``) the part covers, so the generic section
    of the export leaves them to it.
    """

    key: str
    export: Callable[[int], object] | None = None
    erase: Callable[[int], None] | None = None
    models: tuple[str, ...] = field(default_factory=tuple)


_parts: dict[str, PrivacyPart] = {}


def privacy_part_register(part: PrivacyPart) -> None:
    """Add (or replace, by key) a part of the member data export and erasure."""
    _parts[part.key] = part


def privacy_parts() -> list[PrivacyPart]:
    """Return the registered parts in key order."""
    return [_parts[key] for key in sorted(_parts)]


# ------------------------------------------------------------------ erasure


@dataclass(frozen=True)
class Erasure:
    """What :func:`member_erase` did."""

    member_id: int
    erased_at: datetime
    log_entry_id: int


def member_is_erased(member: Member) -> bool:
    """Return whether the member's personal data was erased."""
    return member.card_number.startswith(ERASED_CARD_PREFIX)


def _member_repr(member_id: int) -> str:
    # What the admin log shows for the member from now on: no name, no card.
    return f"Member #{member_id} (erased)"


def member_erase(*, member_id: int, reason: str, actor: AbstractBaseUser) -> Erasure:
    """Anonymise a member's personal data on their request, and close the membership.

    Requires ``members.erase_member``; ``reason`` (e.g. the request's reference) is
    required and kept with the actor and time in the admin log. Overwritten: names,
    e-mail, phone, birth date, gender, city, card number (``ERASED-<id>``); consents are
    withdrawn. The membership is closed with a status-history row. Ledger rows,
    purchases, vouchers and tiers are kept unchanged (the balance and every total stay
    correct); the admin log's earlier descriptions of the member lose their name.
    Registered parts erase what the apps above keep. Raise :class:`ErasureRefused`
    (nothing written) or ``PermissionDenied``.
    """
    if not actor.has_perm(ERASE_PERMISSION):
        raise PermissionDenied(ERASE_NOT_ALLOWED)
    reason = " ".join((reason or "").split())
    if not reason:
        raise ErasureRefused(ERASE_REASON_REQUIRED, code="reason_required")
    if len(reason) > ERASE_REASON_MAX:
        raise ErasureRefused(
            ERASE_REASON_TOO_LONG, code="reason_too_long", params={"max": ERASE_REASON_MAX}
        )
    now = timezone.now()
    member_type = ContentType.objects.get_for_model(Member)
    with transaction.atomic():
        # The member's row lock: an erasure and a profile edit never interleave.
        member = Member.objects.select_for_update().get(id=member_id)
        if member_is_erased(member):
            erased = (
                LogEntry.objects.filter(
                    content_type=member_type, object_id=str(member_id),
                    change_message__startswith="Personal data erased",
                ).order_by("-action_time").values_list("action_time", flat=True).first()
            )
            raise ErasureRefused(
                ERASE_ALREADY_DONE, code="already_erased",
                params={"date": timezone.localtime(erased or member.updated_at).date()},
            )
        if member.status != Member.Status.CLOSED:
            MemberStatusChange.objects.create(
                member=member, from_status=member.status, to_status=Member.Status.CLOSED,
                reason=ERASED_STATUS_REASON, actor=actor, created_at=now,
            )
        # A queryset update: the anonymised row need not pass the profile form's rules
        # (an e-mail or phone is required nowhere, a first name is).
        Member.objects.filter(id=member_id).update(
            card_number=f"{ERASED_CARD_PREFIX}{member_id}",
            first_name=ERASED_FIRST_NAME, last_name="", email="", phone="", birth_date=None,
            gender="", city="", status=Member.Status.CLOSED,
            email_consent=False, email_consent_at=now, sms_consent=False, sms_consent_at=now,
            updated_at=now,
        )
        # Earlier admin-log lines named the member in their description.
        LogEntry.objects.filter(content_type=member_type, object_id=str(member_id)).update(
            object_repr=_member_repr(member_id)
        )
        for part in privacy_parts():
            if part.erase is not None:
                part.erase(member_id)
        entry = LogEntry.objects.create(
            user_id=actor.pk, content_type=member_type, object_id=str(member_id),
            object_repr=_member_repr(member_id), action_flag=CHANGE, action_time=now,
            change_message=f"Personal data erased. Reason: {reason}",
        )
    return Erasure(member_id=member_id, erased_at=now, log_entry_id=entry.pk)


# ------------------------------------------------------------------ export

# Member fields that are the member's own data (the caches and links are listed apart).
_PROFILE_FIELDS = (
    "id", "card_number", "first_name", "last_name", "email", "phone", "birth_date",
    "gender", "city", "language", "enrolled_at", "source_channel", "status",
    "referred_by_id", "created_at", "updated_at",
)
_CONSENT_FIELDS = ("email_consent", "email_consent_at", "sms_consent", "sms_consent_at")
_LEDGER_FIELDS = (
    "id", "created_at", "kind", "amount", "balance_after", "available_at", "reason",
    "reference", "purchase_id", "reverses_id", "details",
)
_PURCHASE_FIELDS = (
    "id", "store__code", "store__name", "receipt_number", "channel", "purchased_at",
    "total", "discount", "item_count", "refunded_total",
)
# Tables the sections above already cover (the generic section skips them).
_COVERED = {
    "members.member", "members.pointsentry", "members.purchase", "members.purchaseline",
    "members.purchaserefund", "members.pointsadjustment", "members.memberstatuschange",
}


def _concrete_names(model: type[models.Model]) -> list[str]:
    return [model_field.attname for model_field in model._meta.concrete_fields]


def _existing(model: type[models.Model], names: tuple[str, ...]) -> list[str]:
    # Fields named here that the model has (a field added later is still exported by
    # the generic section's rules; one removed is skipped rather than failing).
    known = {f.attname for f in model._meta.concrete_fields} | {
        f.name for f in model._meta.concrete_fields
    }
    return [name for name in names if name.split("__")[0] in known]


def _member_tables() -> list[tuple[type[models.Model], list[str]]]:
    """Return every other model with a foreign key to Member, and those keys' columns."""
    found = []
    for model in apps.get_models():
        label = model._meta.label_lower
        if label in _COVERED or not model._meta.managed:
            continue
        columns = [
            f.attname for f in model._meta.concrete_fields
            if f.is_relation and f.related_model is Member
        ]
        if columns:
            found.append((model, columns))
    return sorted(found, key=lambda item: item[0]._meta.label_lower)


def member_data_export(*, member_id: int) -> bytes:
    """Return everything held about a member as one UTF-8 JSON document.

    Sections: ``member`` (profile), ``consents``, ``points`` (balance and the whole
    ledger), ``purchases`` (with lines and refunds), ``adjustments``, ``status_history``,
    ``tables`` (every row of any other table pointing at the member: vouchers, tiers,
    referrals, ...) and ``parts`` (what the apps above registered). Amounts are strings
    (exact decimals), times ISO 8601 in UTC. A fixed number of queries per table, however
    long the history. Raise ``Member.DoesNotExist`` for an unknown id.
    """
    member = Member.objects.get(id=member_id)
    profile = {name: getattr(member, name) for name in _existing(Member, _PROFILE_FIELDS)}
    consents = {name: getattr(member, name) for name in _CONSENT_FIELDS}

    ledger = list(
        PointsEntry.objects.filter(member_id=member_id).order_by("id")
        .values(*_existing(PointsEntry, _LEDGER_FIELDS))
    )
    purchases = {
        row["id"]: {**row, "lines": [], "refunds": []}
        for row in Purchase.objects.filter(member_id=member_id).order_by("purchased_at", "id")
        .values(*_PURCHASE_FIELDS)
    }
    for line in PurchaseLine.objects.filter(purchase__member_id=member_id).order_by("id").values(
        "purchase_id", "sku", "category__code", "category__name", "quantity", "amount"
    ):
        purchases[line.pop("purchase_id")]["lines"].append(line)
    for refund in PurchaseRefund.objects.filter(purchase__member_id=member_id).order_by(
        "id"
    ).values("purchase_id", "amount", "reason", "refund_key", "created_at"):
        purchases[refund.pop("purchase_id")]["refunds"].append(refund)
    adjustments = list(
        PointsAdjustment.objects.filter(member_id=member_id).order_by("id").values(
            "id", "amount", "reason", "status", "requested_at", "decided_at", "entry_id"
        )
    )
    status_history = list(
        MemberStatusChange.objects.filter(member_id=member_id).order_by("id").values(
            "from_status", "to_status", "reason", "created_at"
        )
    )

    claimed = {label.lower() for part in privacy_parts() for label in part.models}
    tables = {}
    for model, columns in _member_tables():
        label = model._meta.label_lower
        if label in claimed:
            continue
        condition = models.Q()
        for column in columns:
            condition |= models.Q(**{column: member_id})
        rows = list(model._default_manager.filter(condition).order_by("pk").values(
            *_concrete_names(model)
        ))
        if rows:
            tables[label] = rows
    parts = {
        part.key: part.export(member_id) for part in privacy_parts() if part.export is not None
    }

    document = {
        "format": EXPORT_FORMAT,
        "generated_at": timezone.now(),
        "member": profile,
        "consents": consents,
        "points": {"balance": member.points_balance, "ledger": ledger},
        "purchases": list(purchases.values()),
        "adjustments": adjustments,
        "status_history": status_history,
        "tables": tables,
        "parts": parts,
    }
    return json.dumps(
        document, cls=DjangoJSONEncoder, ensure_ascii=False, indent=1
    ).encode("utf-8")


def member_data_export_filename(member: Member) -> str:
    """Return the download's file name: the member's id, not their name."""
    return f"member-{member.pk}-data-{timezone.localdate():%Y-%m-%d}.json"


__all__ = [
    "ERASE_PERMISSION", "EXPORT_PERMISSION", "Erasure", "ErasureRefused", "PrivacyPart",
    "member_data_export", "member_data_export_filename", "member_erase", "member_is_erased",
    "privacy_part_register", "privacy_parts",
]
