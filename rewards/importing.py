"""The programme's imports: purchases with lines, redemptions, voucher uses, opening
balances and tiers.

Registered with :mod:`members.importing.registry` when the registry loads the modules
of ``LOYALTY_IMPORT_KINDS``. Every write goes through :mod:`rewards.services` or the
ledger service, so an imported purchase earns its points by the same rules as one
from a cash register, and every row carries its own idempotency key.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from django.db import connection, transaction
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _

from members.importing.files import (
    cell_text,
    choice_parser,
    datetime_parser,
    decimal_parser,
    integer_parser,
    text_parser,
)
from members.importing.kinds import card_number_column
from members.importing.registry import (
    NEW,
    UNCHANGED,
    UPDATED,
    Column,
    ImportKind,
    Record,
    kind_register,
)
from members.models import Member, PointsEntry, ProductCategory, Purchase, Store
from members.postgres import arrays_execute
from members.services import PointsRefused, PurchaseLineData, points_post
from rewards.models import MemberTier, Reward, Tier, Voucher
from rewards.receipts import ReceiptData, purchases_record_batch, receipt_programme_load
from rewards.selectors import purchases_by_receipt
from rewards.services import (
    VOUCHER_NOT_ISSUED,
    purchase_record,
    reward_redeem,
    tier_set_manual,
    voucher_use,
)

STORE_UNKNOWN = _("There is no store with the code “%(code)s”.")
MEMBER_UNKNOWN = _("There is no member with the card number “%(card)s”.")
CATEGORY_UNKNOWN = _("There is no product category “%(category)s”.")
LINE_INCOMPLETE = _("A receipt line needs both an SKU and an amount.")
TOTAL_MISSING = _("Give the receipt's total or its lines with their amounts.")
RECEIPT_DIFFERS = _("Differs from row %(row)s of the same receipt, which says “%(value)s”.")
RECEIPT_CONFLICT = _(
    "This receipt was already recorded with another total or member (total %(total)s); "
    "an import never changes a recorded receipt."
)
VOUCHER_UNKNOWN = _("There is no voucher with the code “%(code)s”.")
VOUCHER_OTHER_MEMBER = _("This voucher belongs to another member.")
VOUCHER_USED_BEFORE_ISSUED = _("The voucher was issued on %(issued)s, after this date.")
VOUCHER_USED_AFTER_EXPIRY = _("The voucher expired on %(expired)s, before this date.")
TIER_UNKNOWN = _("There is no tier “%(tier)s”; the tiers are: %(tiers)s.")
OPENING_DIFFERS = _(
    "An opening balance of %(points)s points was already posted for this card; correct "
    "it with an adjustment, not a second opening balance."
)
MEMBER_CANNOT_EARN = _(
    "The member is %(status)s: a blocked or closed member can receive no opening balance."
)

# Stored on the ledger row and in the tier history: data, not a screen text.
MIGRATED = "Migrated"


def _members_by_card(cards: Iterable[str]) -> dict[str, dict]:
    """Return id and status of the members with these card numbers, by card number."""
    cards = {card for card in cards if card}
    if not cards:
        return {}
    if connection.vendor == "postgresql":
        # A batch's thousand cards as one array bound by the server, not a thousand
        # quoted parameters.
        return {
            card: {"id": pk, "card_number": card, "status": status}
            for pk, card, status in arrays_execute(
                f"SELECT id, card_number, status FROM {Member._meta.db_table} "  # noqa: S608
                "WHERE card_number = ANY(%s::text[])",
                [sorted(cards)],
            )
        }
    return {
        row["card_number"]: row
        for row in Member.objects.filter(card_number__in=cards).values(
            "id", "card_number", "status"
        )
    }


def _member_resolve(record: Record, members: dict[str, dict]) -> dict | None:
    card = record.values.get("card_number")
    if not card:
        return None
    member = members.get(card)
    if member is None:
        record.error("card_number", MEMBER_UNKNOWN, card=card)
    return member


# ------------------------------------------------------------------ purchases

_CHANNELS = {
    "store": Purchase.Channel.STORE, "in store": Purchase.Channel.STORE,
    "shop": Purchase.Channel.STORE, "магазин": Purchase.Channel.STORE,
    "online": Purchase.Channel.ONLINE, "web": Purchase.Channel.ONLINE,
    "web site": Purchase.Channel.ONLINE, "сайт": Purchase.Channel.ONLINE,
    "интернет": Purchase.Channel.ONLINE, "интернет-магазин": Purchase.Channel.ONLINE,
    "app": Purchase.Channel.APP, "mobile app": Purchase.Channel.APP,
    "приложение": Purchase.Channel.APP,
}


@kind_register
class PurchasesKind(ImportKind):
    """Receipts with their lines, by store code and receipt number, earning points.

    One row per receipt line; the rows of one receipt follow each other and repeat
    (or leave empty) the receipt's own columns.
    """

    key = "purchases"
    label = _("Purchases")
    description = _(
        "Receipts from the cash registers or the web shop, one row per receipt line, by "
        "store code and receipt number. Each receipt earns points by the programme's "
        "rules; a receipt already recorded is left as it is."
    )
    record_name = _("receipt")
    permissions = ("members.add_purchase",)
    group_by = ("store", "receipt_number")
    # Receipts are written set-based (rewards.receipts): larger batches, fewer statements
    # per row (100,000 receipts: 4,900 rows/s in batches of 2,000, 5,400 in 5,000; the
    # runner holds three batches at a time). Read by a runner that supports it.
    batch_rows = 5000
    # The receipt's own columns: equal (or empty) on each of its rows.
    receipt_columns = ("card_number", "purchased_at", "total", "discount", "channel")
    columns = (
        Column("store", _("store"), text_parser(max_length=32), required=True,
               aliases=("store", "store code", "shop", "shop code", "магазин", "код магазина",
                        "торговая точка"),
               help_text=_("The store's code, e.g. MSK-001.")),
        Column("receipt_number", _("receipt number"), text_parser(max_length=64),
               required=True,
               aliases=("receipt", "receipt no", "receipt number", "check", "check number",
                        "чек", "номер чека", "№ чека")),
        card_number_column(required=False,
                           help_text=_("Empty for a customer without a card.")),
        Column("purchased_at", _("purchased at"), datetime_parser(future=False),
               required=True,
               aliases=("date", "purchase date", "purchased at", "date time", "datetime",
                        "дата", "дата покупки", "дата чека", "дата и время", "время покупки"),
               help_text=_("dd.mm.yyyy or yyyy-mm-dd, with HH:MM[:SS] if you have it.")),
        Column("total", _("receipt total"), decimal_parser(places=2),
               aliases=("total", "receipt total", "paid", "итого", "итог", "сумма чека",
                        "всего", "оплачено"),
               help_text=_("Paid after discounts; the sum of the lines if empty.")),
        Column("discount", _("discount"), decimal_parser(places=2),
               aliases=("discount", "скидка", "сумма скидки")),
        Column("channel", _("channel"), choice_parser(_CHANNELS),
               aliases=("channel", "канал", "канал продаж"),
               help_text=_("store, online or app; store if empty.")),
        Column("sku", _("SKU"), text_parser(max_length=64),
               aliases=("sku", "article", "item", "product code", "артикул", "код товара",
                        "товар")),
        Column("category", _("category"), text_parser(max_length=200),
               aliases=("category", "category code", "категория", "код категории",
                        "группа товара"),
               help_text=_("A product category's code or name; may be empty.")),
        Column("quantity", _("quantity"), decimal_parser(places=3, zero=False),
               aliases=("quantity", "qty", "количество", "кол во", "кол-во"),
               help_text=_("1 if empty; may have decimals (by weight).")),
        Column("amount", _("line amount"), decimal_parser(places=2),
               aliases=("amount", "line amount", "line total", "sum", "сумма", "сумма строки",
                        "стоимость", "сумма по строке")),
    )

    def start(self, job) -> None:
        self.stores = dict(Store.objects.values_list("code", "id"))
        self.stores_folded = {code.upper(): pk for code, pk in self.stores.items()}
        self.categories: dict[str, int] = {}
        for pk, code, name in ProductCategory.objects.values_list("id", "code", "name"):
            self.categories.setdefault(code.lower(), pk)
            self.categories.setdefault(name.lower(), pk)

    def row_key(self, record: Record) -> str:
        values = record.values
        return f"{values['store']}|{values['receipt_number']}"

    def check(self, records: list[Record], job) -> None:
        members = _members_by_card(r.values.get("card_number") for r in records)
        plans = [self._plan(record, members) for record in records]
        existing = purchases_by_receipt(
            [(plan["store_id"], plan["receipt_number"]) for plan in plans if plan]
        )
        for record, plan in zip(records, plans, strict=True):
            if not plan or record.errors:
                continue
            found = existing.get((plan["store_id"], plan["receipt_number"]))
            if found is None:
                record.outcome, record.plan = NEW, plan
            elif found == (plan["member_id"], plan["total"]):
                record.outcome = UNCHANGED
            else:
                record.error("receipt_number", RECEIPT_CONFLICT, total=found[1])

    def _plan(self, record: Record, members: dict[str, dict]) -> dict | None:
        """Return purchase_record's arguments for the record, or None (errors added)."""
        first: dict[str, tuple] = {}
        rows = zip(record.rows, record.lines, strict=True) if len(record.rows) > 1 else ()
        for row, line in rows:  # a receipt of one line has nothing to disagree with
            for name in self.receipt_columns:
                value = line[name]
                if value is None:
                    continue
                if name not in first:
                    first[name] = (value, row.number)
                elif first[name][0] != value:
                    record.error(name, RECEIPT_DIFFERS, on_row=row.number,
                                 row=first[name][1], value=cell_text(first[name][0]))
        values = record.values
        store_id = None
        if values["store"]:
            store_id = self.stores.get(values["store"]) or self.stores_folded.get(
                values["store"].upper()
            )
            if store_id is None:
                record.error("store", STORE_UNKNOWN, code=values["store"])
        member = _member_resolve(record, members)
        refused_cells = {(error.row, error.column) for error in record.errors}
        lines = []
        for row, line in zip(record.rows, record.lines, strict=True):
            if refused_cells and {(row.number, "sku"), (row.number, "amount")} & refused_cells:
                continue  # the cell's own error says enough
            if line["sku"] is None and line["amount"] is None:
                continue
            if line["sku"] is None or line["amount"] is None:
                record.error("sku" if line["sku"] is None else "amount", LINE_INCOMPLETE,
                             on_row=row.number)
                continue
            category_id = None
            if line["category"]:
                category_id = self.categories.get(line["category"].lower())
                if category_id is None:
                    record.error("category", CATEGORY_UNKNOWN, on_row=row.number,
                                 category=line["category"])
            lines.append(PurchaseLineData(
                sku=line["sku"], amount=line["amount"], category_id=category_id,
                quantity=line["quantity"] if line["quantity"] is not None else Decimal(1),
            ))
        total = values["total"]
        if total is None and lines:
            total = sum((line.amount for line in lines), Decimal(0))
        if total is None and not record.errors:
            record.error("total", TOTAL_MISSING)
        if record.errors:
            return None
        return {
            "store_id": store_id,
            "receipt_number": values["receipt_number"],
            "member_id": member["id"] if member else None,
            "purchased_at": values["purchased_at"],
            "total": total,
            "discount": values["discount"] or Decimal(0),
            "channel": values["channel"] or Purchase.Channel.STORE,
            "lines": lines,
        }

    def apply(self, records: list[Record], job) -> None:
        # The whole batch at once, with exactly the rules of purchase_record, as they
        # were when the import started (read once, not for every batch).
        if getattr(self, "programme", None) is None:
            self.programme = receipt_programme_load()
        try:
            recording = purchases_record_batch(
                receipts=[ReceiptData(**record.plan) for record in records],
                actor=job.created_by, programme=self.programme,
            )
        except PointsRefused:
            # The ledger refused something the rules did not foresee: the batch was undone;
            # receipt by receipt, the refusal lands on its own row.
            self._apply_one_by_one(records, job)
            return
        for record, created in zip(records, recording.created, strict=True):
            if not created:
                record.outcome = UNCHANGED  # recorded meanwhile, e.g. by the cash register

    def _apply_one_by_one(self, records: list[Record], job) -> None:
        for record in records:
            try:
                recording = purchase_record(**record.plan, actor=job.created_by)
            except PointsRefused as refusal:
                record.error("", str(refusal))
                continue
            if not recording.created:
                record.outcome = UNCHANGED


# ------------------------------------------------------------------ voucher uses


@kind_register
class VoucherUsesKind(ImportKind):
    """Vouchers used in a store or on the web site, by voucher code."""

    key = "voucher_uses"
    label = _("Voucher uses")
    description = _(
        "Marks issued vouchers as used, by voucher code, e.g. from the cash registers. A "
        "voucher already used is left as it is."
    )
    record_name = _("voucher")
    permissions = ("rewards.change_voucher",)
    key_columns = ("code",)
    columns = (
        Column("code", _("voucher code"), text_parser(max_length=20, upper=True, compact=True),
               required=True,
               aliases=("code", "voucher", "voucher code", "coupon", "код", "код ваучера",
                        "ваучер", "купон", "код купона")),
        Column("used_at", _("used at"), datetime_parser(future=False),
               aliases=("used", "used at", "date", "дата", "дата использования",
                        "использован"),
               help_text=_("When it was used; now if empty.")),
        card_number_column(required=False,
                           help_text=_("If given, checked against the voucher's member.")),
    )

    def row_key(self, record: Record) -> str:
        return record.values["code"] or ""

    def check(self, records: list[Record], job) -> None:
        codes = {r.values["code"] for r in records if r.values["code"]}
        vouchers = {
            voucher.code: voucher
            for voucher in Voucher.objects.filter(code__in=codes).only(
                "id", "code", "status", "member_id", "issued_at", "expires_at"
            )
        }
        members = _members_by_card(r.values.get("card_number") for r in records)
        for record in records:
            values = record.values
            member = _member_resolve(record, members)
            if not values["code"]:
                continue
            voucher = vouchers.get(values["code"])
            if voucher is None:
                record.error("code", VOUCHER_UNKNOWN, code=values["code"])
                continue
            if member is not None and member["id"] != voucher.member_id:
                record.error("card_number", VOUCHER_OTHER_MEMBER)
            used_at = values["used_at"]
            if voucher.status == Voucher.Status.USED:
                record.outcome = UNCHANGED
            elif voucher.status != Voucher.Status.ISSUED:
                record.error(
                    "code", VOUCHER_NOT_ISSUED, action=_("used"),
                    status=voucher.get_status_display().lower(),
                )
            elif used_at is not None and used_at < voucher.issued_at:
                record.error("used_at", VOUCHER_USED_BEFORE_ISSUED,
                             issued=date_format(voucher.issued_at, "SHORT_DATE_FORMAT"))
            elif used_at is not None and used_at > voucher.expires_at:
                record.error("used_at", VOUCHER_USED_AFTER_EXPIRY,
                             expired=date_format(voucher.expires_at, "SHORT_DATE_FORMAT"))
            else:
                record.outcome = UPDATED
                record.plan = {"voucher_id": voucher.id, "at": used_at}

    def apply(self, records: list[Record], job) -> None:
        for record in records:
            try:
                voucher_use(**record.plan, actor=job.created_by)
            except PointsRefused as refusal:
                record.error("code", str(refusal))


# ------------------------------------------------------------------ opening balances


@kind_register
class OpeningBalancesKind(ImportKind):
    """Balances and tiers carried over from the programme's previous system."""

    key = "opening_balances"
    label = _("Opening balances and tiers")
    description = _(
        "For a programme moved from another system: each member's points as an opening "
        "balance (one per card, ever) and, optionally, their tier, set by hand with the "
        "reason “Migrated”."
    )
    record_name = _("member")
    permissions = ("members.add_pointsentry", "rewards.change_membertier")
    key_columns = ("card_number",)
    columns = (
        card_number_column(),
        Column("points", _("points"), integer_parser(negative=False), required=True,
               aliases=("points", "balance", "points balance", "баллы", "баланс",
                        "баланс баллов", "остаток баллов", "бонусы")),
        Column("tier", _("tier"), text_parser(max_length=50),
               aliases=("tier", "level", "tier name", "уровень", "уровень участника",
                        "уровень программы"),
               help_text=_("A tier's name, e.g. Gold; empty leaves the tier as it is.")),
    )

    def start(self, job) -> None:
        self.tiers = {tier.name.lower(): tier for tier in Tier.objects.order_by("rank")}

    @staticmethod
    def idempotency_key(card: str) -> str:
        return f"opening:{card}"

    def row_key(self, record: Record) -> str:
        return record.values["card_number"] or ""

    def check(self, records: list[Record], job) -> None:
        members = _members_by_card(r.values["card_number"] for r in records)
        keys = [self.idempotency_key(card) for card in members]
        posted = {
            row["idempotency_key"]: row
            for row in PointsEntry.objects.filter(idempotency_key__in=keys).values(
                "idempotency_key", "member_id", "amount"
            )
        }
        member_ids = [member["id"] for member in members.values()]
        current = {
            row["member_id"]: row
            for row in MemberTier.objects.filter(member_id__in=member_ids).values(
                "member_id", "tier_id", "source"
            )
        }
        for record in records:
            values = record.values
            member = _member_resolve(record, members)
            tier = None
            if values["tier"]:
                tier = self.tiers.get(values["tier"].lower())
                if tier is None:
                    record.error("tier", TIER_UNKNOWN, tier=values["tier"],
                                 tiers=", ".join(t.name for t in self.tiers.values()) or "—")
            if member is None or record.errors:
                continue
            points = values["points"] or 0
            entry = posted.get(self.idempotency_key(values["card_number"]))
            post = False
            if entry is not None:
                if (entry["member_id"], entry["amount"]) != (member["id"], points):
                    record.error("points", OPENING_DIFFERS, points=entry["amount"])
                    continue
            elif points:
                if member["status"] != Member.Status.ACTIVE:
                    record.error("card_number", MEMBER_CANNOT_EARN,
                                 status=Member.Status(member["status"]).label.lower())
                    continue
                post = True
            status = current.get(member["id"])
            set_tier = tier is not None and (
                status is None or status["tier_id"] != tier.id
                or status["source"] != MemberTier.Source.MANUAL
            )
            record.outcome = NEW if post else UPDATED if set_tier else UNCHANGED
            record.plan = {
                "member_id": member["id"], "card": values["card_number"],
                "points": points if post else 0, "tier_id": tier.id if set_tier else None,
            }

    def apply(self, records: list[Record], job) -> None:
        for record in records:
            plan = record.plan
            try:
                with transaction.atomic():
                    if plan["points"]:
                        points_post(
                            member_id=plan["member_id"], amount=plan["points"],
                            kind=PointsEntry.Kind.OPENING,
                            idempotency_key=self.idempotency_key(plan["card"]),
                            reason=MIGRATED, actor=job.created_by,
                            reference=f"import:{job.pk}",
                        )
                    if plan["tier_id"] is not None:
                        tier_set_manual(
                            member_id=plan["member_id"], tier_id=plan["tier_id"],
                            reason=MIGRATED, until=None, actor=job.created_by,
                        )
            except PointsRefused as refusal:
                record.error("points", str(refusal))


# ------------------------------------------------------------------ redemptions

REWARD_UNKNOWN = _("There is no reward “%(reward)s”.")
REDEMPTION_OTHER = _(
    "This POS reference was already used for another member or reward; an import never "
    "changes a redemption."
)


@kind_register
class RedemptionsKind(ImportKind):
    """Rewards redeemed at the cash registers: points debited, a voucher issued."""

    key = "redemptions"
    label = _("Redemptions")
    description = _(
        "Rewards redeemed at the cash registers, one per row with the POS's own reference. "
        "Each debits the points and issues the voucher by the same rules as a redemption "
        "on the member page; a reference imported before is left as it is."
    )
    record_name = _("redemption")
    permissions = ("rewards.add_voucher",)
    key_columns = ("reference",)
    columns = (
        Column("reference", _("POS reference"), text_parser(max_length=64), required=True,
               aliases=("reference", "pos reference", "redemption", "redemption id", "id",
                        "номер", "номер операции", "операция", "ссылка")),
        card_number_column(),
        Column("reward", _("reward"), text_parser(max_length=100), required=True,
               aliases=("reward", "reward name", "reward id", "награда", "приз",
                        "код награды"),
               help_text=_("The reward's name as in the catalogue, or its number.")),
    )

    def start(self, job) -> None:
        self.rewards = {}
        for reward in Reward.objects.all():
            self.rewards[reward.name.strip().lower()] = reward
            self.rewards[str(reward.pk)] = reward

    @staticmethod
    def idempotency_key(reference: str) -> str:
        return f"pos-redemption:{reference}"

    def row_key(self, record: Record) -> str:
        return record.values["reference"] or ""

    def check(self, records: list[Record], job) -> None:
        members = _members_by_card(r.values["card_number"] for r in records)
        keys = [self.idempotency_key(r.values["reference"]) for r in records
                if r.values["reference"]]
        issued = {
            voucher["idempotency_key"]: voucher
            for voucher in Voucher.objects.filter(idempotency_key__in=keys).values(
                "idempotency_key", "member_id", "reward_id"
            )
        }
        for record in records:
            values = record.values
            member = _member_resolve(record, members)
            reward = None
            if values["reward"]:
                reward = self.rewards.get(values["reward"].strip().lower())
                if reward is None:
                    record.error("reward", REWARD_UNKNOWN, reward=values["reward"])
            if member is None or reward is None or record.errors:
                continue
            before = issued.get(self.idempotency_key(values["reference"]))
            if before is not None:
                if (before["member_id"], before["reward_id"]) != (member["id"], reward.pk):
                    record.error("reference", REDEMPTION_OTHER)
                else:
                    record.outcome = UNCHANGED
                continue
            record.outcome = NEW
            record.plan = {"member_id": member["id"], "reward_id": reward.pk,
                           "reference": values["reference"]}

    def apply(self, records: list[Record], job) -> None:
        for record in records:
            plan = record.plan
            try:
                reward_redeem(
                    member_id=plan["member_id"], reward_id=plan["reward_id"],
                    actor=job.created_by,
                    idempotency_key=self.idempotency_key(plan["reference"]),
                )
            except PointsRefused as refusal:
                record.error("reward", str(refusal))
