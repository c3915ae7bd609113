"""Receipts recorded many at a time: the programme applied to a batch of purchases.

:func:`purchases_record_batch` gives exactly what :func:`rewards.services.purchase_record`
gives when the same receipts are recorded one after another in the order given: the
same purchases and lines, the same accruals (amounts, explanations, pending windows,
``purchase:<id>`` keys, in the same order, so the same ``balance_after``), the same tier
upgrades and history, stamp vouchers and referral bonuses. It does so with a fixed
number of queries per batch instead of about twenty per receipt:

1. what the programme needs is read once: members (locked in id order), their tiers,
   the tiers, stamp rules, pending referrals, earning rules (once per set of rules in
   force), campaign multipliers, and each receipt's starting point for its tier
   (qualifying value) and stamp cards, as the database holds them *before* the batch;
2. the purchases are inserted with ``ON CONFLICT DO NOTHING`` on store and receipt
   number, so a receipt recorded before (or meanwhile, by a cash register) is left as
   it is and earns nothing again; their lines follow;
3. the programme runs in memory over the new receipts in the order given: each
   accrual uses the tier the member has at that moment, each tier check adds what the
   earlier receipts of the batch contribute to the qualifying window, stamp cards
   count on from the database's count;
4. the results are written set-based: ledger rows through
   :func:`members.services.points_post_batch`, tiers and their history, vouchers,
   referrals.

PostgreSQL gets array (``unnest``) statements; other databases (SQLite, the embedded
default) take a portable path through the ORM with the same results.
"""

from __future__ import annotations

# Statements are assembled from model table names; every value is a query parameter.
# ruff: noqa: S608
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from members.models import (
    Member,
    PointsEntry,
    ProgrammeSettings,
    Purchase,
    PurchaseLine,
    TierBasis,
)
from members.postgres import arrays_execute, rows_copy
from members.selectors import programme_settings_get
from members.services import (
    Posting,
    PostingRequest,
    PurchaseLineData,
    members_last_purchase_advance,
    members_lock,
    points_post_batch,
)
from rewards import engine
from rewards.engine import (
    BasketLine,
    RuleSet,
    basket_points_explain,
    earning_rules_load,
)
from rewards.models import MemberTier, Referral, StampRule, Tier, TierChange, Voucher
from rewards.selectors import (
    category_names_get,
    earning_rule_periods_get,
    member_qualifying_value,
    qualification_window_start,
    tier_for_value,
    tiers_ordered,
)
from rewards.services import voucher_code_generate

_PURCHASE_TABLE = Purchase._meta.db_table
_LINE_TABLE = PurchaseLine._meta.db_table
_MEMBER_TABLE = Member._meta.db_table
_LEDGER_TABLE = PointsEntry._meta.db_table
_TIER_TABLE = MemberTier._meta.db_table


@dataclass(frozen=True)
class ReceiptData:
    """One receipt to record: the arguments of :func:`rewards.services.purchase_record`."""

    store_id: int
    receipt_number: str
    total: Decimal
    purchased_at: datetime
    member_id: int | None = None
    discount: Decimal = Decimal(0)
    channel: str = Purchase.Channel.STORE
    lines: tuple[PurchaseLineData, ...] | list[PurchaseLineData] = ()


@dataclass
class BatchRecording:
    """What a batch did: per receipt (in the order given) its purchase id and whether
    this call created it, and totals of what the programme gave."""

    purchase_ids: list[int]
    created: list[bool]
    accruals: int = 0
    points: int = 0
    tier_changes: int = 0
    vouchers: int = 0
    referrals: int = 0


@dataclass
class ReceiptProgramme:
    """The programme's configuration a batch reads: settings, tiers, stamp cards,
    category names and earning rules (each distinct set in force loaded once).

    Load it once with :func:`receipt_programme_load` and pass it to every batch of one
    import, so a long import does not read the same rules again for every batch; the
    import then applies the rules as they were when it started.
    """

    settings_row: ProgrammeSettings
    tiers: list[Tier]
    stamp_rules: list[StampRule]
    category_names: dict[int, str]
    rule_periods: list[tuple[int, date | None, date | None]]
    rule_sets: dict[tuple[int, ...], RuleSet] = field(default_factory=dict)

    def rules_on(self, day: date) -> RuleSet:
        """Return the earning rules in force on ``day`` (loaded once per distinct set)."""
        in_force = tuple(
            rule_id for rule_id, valid_from, valid_until in self.rule_periods
            if (valid_from is None or valid_from <= day)
            and (valid_until is None or valid_until >= day)
        )
        if in_force not in self.rule_sets:
            self.rule_sets[in_force] = earning_rules_load(on=day)
        return self.rule_sets[in_force]


def receipt_programme_load() -> ReceiptProgramme:
    """Return the programme's configuration as it is now, for one or more batches."""
    return ReceiptProgramme(
        settings_row=programme_settings_get(),
        tiers=tiers_ordered(),
        stamp_rules=list(
            StampRule.objects.filter(is_active=True).select_related("reward").order_by("id")
        ),
        category_names=category_names_get(),
        rule_periods=earning_rule_periods_get(),
    )


def set_based() -> bool:
    """Return whether the batch uses PostgreSQL's array statements (else the ORM path)."""
    return connection.vendor == "postgresql"


# ------------------------------------------------------------------ the service


def purchases_record_batch(
    *,
    receipts: list[ReceiptData],
    actor: AbstractBaseUser | None = None,
    programme: ReceiptProgramme | None = None,
) -> BatchRecording:
    """Record receipts and apply the programme to each new one, as if one by one.

    The result equals calling :func:`rewards.services.purchase_record` for each receipt
    in the order given (see the module's docstring); one transaction for the batch. A
    receipt already recorded (same store and receipt number) is left as it is:
    ``created`` False, nothing posted. Receipts must be distinct by store and receipt
    number. ``programme`` (from :func:`receipt_programme_load`) saves reading the
    configuration again; by default it is read now. Raise
    :class:`members.services.PointsRefused` if the ledger refuses a posting the rules
    did not foresee; then nothing of the batch is written.
    """
    recording = BatchRecording(purchase_ids=[0] * len(receipts), created=[False] * len(receipts))
    if not receipts:
        return recording
    if len({(r.store_id, r.receipt_number) for r in receipts}) != len(receipts):
        # One insert cannot tell which of two equal receipts it recorded.
        raise ValueError("A receipt appears twice in the batch (same store and number).")
    with transaction.atomic():
        # PostgreSQL finds receipts recorded before by the INSERT's ON CONFLICT; elsewhere
        # they are looked up first.
        existing = {} if set_based() else _existing_receipts(receipts)
        fresh = [
            index for index, receipt in enumerate(receipts)
            if (receipt.store_id, receipt.receipt_number) not in existing
        ]
        for index, receipt in enumerate(receipts):
            recording.purchase_ids[index] = existing.get(
                (receipt.store_id, receipt.receipt_number), 0
            )
        if not fresh:
            return recording
        state = _ProgrammeState.load(
            receipts=receipts, fresh=fresh, programme=programme or receipt_programme_load()
        )
        inserted = _purchases_insert(receipts=receipts, fresh=fresh)
        for index, purchase_id in inserted.items():
            recording.purchase_ids[index] = purchase_id
            recording.created[index] = True
        missing = [index for index in fresh if index not in inserted]
        if missing:
            # Recorded before, or meanwhile by a cash register: the first one stands, as
            # in purchase_create.
            found = _existing_receipts([receipts[index] for index in missing])
            for index in missing:
                receipt = receipts[index]
                recording.purchase_ids[index] = found.get(
                    (receipt.store_id, receipt.receipt_number), 0
                )
        created = [index for index in fresh if recording.created[index]]
        _lines_insert(receipts=receipts, indexes=created, purchase_ids=recording.purchase_ids)
        outcome = state.run(
            receipts=receipts, indexes=created, purchase_ids=recording.purchase_ids
        )
        # The members' last purchase times go with their balances: one UPDATE of each.
        last_purchases = _last_purchases(receipts=receipts, indexes=created)
        if outcome.postings:
            _postings_write(outcome.postings, actor=actor, last_purchases=last_purchases)
        else:
            members_last_purchase_advance(last_purchases)
        state.write(outcome)
    recording.accruals = outcome.accruals
    recording.points = outcome.points
    recording.tier_changes = len(outcome.tier_changes)
    recording.vouchers = len(outcome.vouchers)
    recording.referrals = len(outcome.referrals)
    return recording


# ------------------------------------------------------------------ purchases and lines


def _existing_receipts(receipts: list[ReceiptData]) -> dict[tuple[int, str], int]:
    """Return the ids of the receipts already recorded, by (store id, receipt number)."""
    wanted = {(receipt.store_id, receipt.receipt_number) for receipt in receipts}
    rows = Purchase.objects.filter(
        store_id__in={store_id for store_id, _number in wanted},
        receipt_number__in={number for _store, number in wanted},
    ).values_list("store_id", "receipt_number", "id")
    return {(store_id, number): pk for store_id, number, pk in rows
            if (store_id, number) in wanted}


def _purchases_insert(*, receipts: list[ReceiptData], fresh: list[int]) -> dict[int, int]:
    """Insert the receipts at ``fresh`` positions; return the new ids by position.

    A receipt recorded meanwhile (same store and number) is skipped, not an error.
    """
    now = timezone.now()
    if set_based():
        columns = {
            "store_id": "bigint", "receipt_number": "text", "member_id": "bigint",
            "channel": "text", "purchased_at": "timestamptz", "total": "numeric",
            "discount": "numeric", "item_count": "integer",
        }
        values = [[] for _column in columns]
        for index in fresh:
            receipt = receipts[index]
            row = (
                receipt.store_id, receipt.receipt_number, receipt.member_id,
                receipt.channel, receipt.purchased_at, Decimal(receipt.total),
                Decimal(receipt.discount), _item_count(receipt),
            )
            for column, value in zip(values, row, strict=True):
                column.append(value)
        arrays = ", ".join(f"%s::{kind}[]" for kind in columns.values())
        ids = {
            (store_id, number): pk
            for pk, store_id, number in arrays_execute(
                f"INSERT INTO {_PURCHASE_TABLE} ({', '.join(columns)}, refunded_total, "
                f"created_at) SELECT *, 0, %s FROM unnest({arrays}) "
                "ON CONFLICT (store_id, receipt_number) DO NOTHING "
                "RETURNING id, store_id, receipt_number",
                [now, *values],
            )
        }
        return {
            index: ids[(receipts[index].store_id, receipts[index].receipt_number)]
            for index in fresh
            if (receipts[index].store_id, receipts[index].receipt_number) in ids
        }
    # Portable path: the database allows one writer (SQLite), so nothing can record
    # these receipts between the check above and this insert.
    purchases = Purchase.objects.bulk_create([
        Purchase(
            store_id=receipts[index].store_id, receipt_number=receipts[index].receipt_number,
            member_id=receipts[index].member_id, channel=receipts[index].channel,
            purchased_at=receipts[index].purchased_at, total=Decimal(receipts[index].total),
            discount=receipts[index].discount, item_count=_item_count(receipts[index]),
        )
        for index in fresh
    ])
    return {index: purchase.pk for index, purchase in zip(fresh, purchases, strict=True)}


def _item_count(receipt: ReceiptData) -> int:
    return int(sum((line.quantity for line in receipt.lines), Decimal(0)))


def _lines_insert(
    *, receipts: list[ReceiptData], indexes: list[int], purchase_ids: list[int]
) -> None:
    rows = [
        (purchase_ids[index], line.sku, line.category_id, line.quantity, line.amount)
        for index in indexes
        for line in receipts[index].lines
    ]
    if not rows:
        return
    if set_based():
        # The purchases' ids are known: the lines go straight in with COPY.
        rows_copy(PurchaseLine, ("purchase_id", "sku", "category_id", "quantity", "amount"),
                  rows)
        return
    PurchaseLine.objects.bulk_create(
        PurchaseLine(purchase_id=purchase_id, sku=sku, category_id=category_id,
                     quantity=quantity, amount=amount)
        for purchase_id, sku, category_id, quantity, amount in rows
    )


def _last_purchases(*, receipts: list[ReceiptData], indexes: list[int]) -> dict[int, datetime]:
    """Return each member's newest time among the new receipts at ``indexes``."""
    latest: dict[int, datetime] = {}
    for index in indexes:
        receipt = receipts[index]
        if receipt.member_id is not None:
            at = latest.get(receipt.member_id)
            if at is None or receipt.purchased_at > at:
                latest[receipt.member_id] = receipt.purchased_at
    return latest


def _postings_write(
    postings: list[tuple[PostingRequest, bool]], *, actor, last_purchases: dict[int, datetime]
) -> None:
    """Post in the order given; runs of the same actor go in one batch each.

    Accruals carry the importing user, referral bonuses none (as in purchase_record),
    and the order must stay the order of the receipts so every ``balance_after`` is the
    one the receipts one by one would give.
    """
    start = 0
    while start < len(postings):
        with_actor = postings[start][1]
        end = start
        while end < len(postings) and postings[end][1] == with_actor:
            end += 1
        requests = [request for request, _with_actor in postings[start:end]]
        results = points_post_batch(
            requests=requests, actor=actor if with_actor else None,
            last_purchases=last_purchases if start == 0 else None,
        )
        for request, result in zip(requests, results, strict=True):
            if isinstance(result, Posting):
                continue
            # A blocked or closed referrer earns nothing; the new member still gets theirs.
            if request.kind == PointsEntry.Kind.REFERRAL and result.code == "member_not_active":
                continue
            raise result
        start = end


# ------------------------------------------------------------------ the programme in memory


@dataclass
class _TierStatus:
    """A member's tier row as the batch sees it, and whether the batch changed it."""

    tier_id: int
    source: str
    since: datetime
    manual_until: date | None
    below_since: date | None
    exists: bool
    dirty: bool = False


@dataclass
class _Outcome:
    postings: list[tuple[PostingRequest, bool]] = field(default_factory=list)
    tier_changes: list[TierChange] = field(default_factory=list)
    vouchers: list[Voucher] = field(default_factory=list)
    referrals: list[int] = field(default_factory=list)
    accruals: int = 0
    points: int = 0


@dataclass
class _ProgrammeState:
    """Everything the programme reads for a batch, loaded before the batch is written."""

    active: set[int]
    tiers: list[Tier]
    statuses: dict[int, _TierStatus]
    baselines: dict[int, Decimal]
    window_starts: dict[int, datetime | None]
    basis: str
    stamp_rules: list[StampRule]
    stamp_counts: dict[tuple[int, int], int]
    referrals: dict[int, Referral]
    referral_min_purchase: Decimal
    referral_points: tuple[int, int]
    return_window_days: int
    multipliers: dict[tuple[int, datetime], tuple[Decimal, str]]
    category_names: dict[int, str]
    rules_by_day: dict[date, RuleSet]
    # Each earning receipt's local day, by position (the time zone looked up once).
    days: dict[int, date]

    @classmethod
    def load(
        cls, *, receipts: list[ReceiptData], fresh: list[int], programme: ReceiptProgramme
    ) -> _ProgrammeState:
        settings_row = programme.settings_row
        members = sorted({receipts[i].member_id for i in fresh
                          if receipts[i].member_id is not None})
        referrals = {
            referral.referred_id: referral
            for referral in _pending_referrals(members)
        } if members else {}
        # Lock order as in points_post_batch (members by id), then their tier rows, so a
        # batch and a single purchase_record never wait on each other in a circle.
        to_lock = sorted(set(members) | {r.referrer_id for r in referrals.values()})
        buying = set(members)
        active = {
            member_id for member_id, status, _balance in members_lock(to_lock)
            if status == Member.Status.ACTIVE and member_id in buying
        } if members else set()
        referrals = {member_id: r for member_id, r in referrals.items() if member_id in active}
        earning = [i for i in fresh if receipts[i].member_id in active]
        tiers = programme.tiers
        statuses = {
            member_id: _TierStatus(
                tier_id=tier_id, source=source, since=since, manual_until=manual_until,
                below_since=below_since, exists=True,
            )
            for member_id, tier_id, source, since, manual_until, below_since
            in _tier_rows_lock(sorted(active))
        } if tiers and active else {}
        window_starts = {
            i: qualification_window_start(at=receipts[i].purchased_at, settings_row=settings_row)
            for i in earning
        } if tiers else {}
        baselines = _qualifying_baselines(
            receipts=receipts, indexes=earning, starts=window_starts,
            basis=settings_row.tier_basis,
        ) if tiers else {}
        stamp_rules = programme.stamp_rules
        stamp_counts = _stamp_baselines(
            rules=stamp_rules, receipts=[receipts[i] for i in earning]
        )
        zone = timezone.get_current_timezone()
        days = {i: timezone.localdate(receipts[i].purchased_at, zone) for i in earning}
        multipliers = engine.bonus_multipliers_get_many(
            moments={(receipts[i].member_id, receipts[i].purchased_at) for i in earning}
        )
        return cls(
            active=active, tiers=tiers, statuses=statuses, baselines=baselines,
            window_starts=window_starts, basis=settings_row.tier_basis,
            stamp_rules=stamp_rules, stamp_counts=stamp_counts, referrals=referrals,
            referral_min_purchase=settings_row.referral_min_purchase,
            referral_points=(settings_row.referral_referrer_points,
                             settings_row.referral_referred_points),
            return_window_days=settings_row.return_window_days,
            multipliers=multipliers,
            category_names=programme.category_names,
            rules_by_day={day: programme.rules_on(day) for day in set(days.values())},
            days=days,
        )

    # -------------------------------------------------------------- running

    def run(
        self, *, receipts: list[ReceiptData], indexes: list[int], purchase_ids: list[int]
    ) -> _Outcome:
        """Apply the programme to the new receipts at ``indexes``, in that order."""
        outcome = _Outcome()
        now = timezone.now()
        # What the batch's earlier receipts add to each member's qualifying value:
        # (time, spend or points).
        contributed: dict[int, list[tuple[datetime, Decimal]]] = defaultdict(list)
        stamped: dict[tuple[int, int], int] = defaultdict(int)
        tiers_by_id = {tier.id: tier for tier in self.tiers}
        for index in indexes:
            receipt = receipts[index]
            member_id = receipt.member_id
            if member_id not in self.active:
                continue
            purchase_id = purchase_ids[index]
            at = receipt.purchased_at
            day = self.days[index]
            points = self._accrue(receipt, day, purchase_id, tiers_by_id, outcome)
            if self.tiers:
                contribution = (
                    Decimal(points) if self.basis == TierBasis.POINTS else Decimal(receipt.total)
                )
                contributed[member_id].append((at, contribution))
                start = self.window_starts[index]
                value = self.baselines.get(index, Decimal(0)) + sum(
                    (amount for moment, amount in contributed[member_id]
                     if moment <= at and (start is None or moment >= start)),
                    Decimal(0),
                )
                self._tier_check(member_id, value, at, tiers_by_id, outcome, now)
            self._stamps(receipt, day, purchase_id, stamped, outcome, now)
            self._referral(receipt, outcome)
        return outcome

    def _accrue(self, receipt, day, purchase_id, tiers_by_id, outcome) -> int:
        status = self.statuses.get(receipt.member_id)
        multiplier, name = self.multipliers.get(
            (receipt.member_id, receipt.purchased_at), (Decimal(1), "")
        )
        explanation = basket_points_explain(
            rules=self.rules_by_day[day],
            total=receipt.total,
            lines=[
                BasketLine(amount=line.amount, category_id=line.category_id, sku=line.sku,
                           category_name=self.category_names.get(line.category_id, ""))
                for line in receipt.lines
            ],
            tier=tiers_by_id.get(status.tier_id) if status else None,
            extra_multiplier=multiplier,
            extra_multiplier_name=name,
        )
        if explanation.points <= 0:
            return 0
        window = self.return_window_days
        outcome.postings.append((PostingRequest(
            member_id=receipt.member_id, amount=explanation.points,
            kind=PointsEntry.Kind.ACCRUAL, idempotency_key=f"purchase:{purchase_id}",
            purchase_id=purchase_id, posted_at=receipt.purchased_at,
            reference=f"purchase:{purchase_id}",
            available_at=receipt.purchased_at + timedelta(days=window) if window else None,
            details=explanation.steps,
        ), True))
        outcome.accruals += 1
        outcome.points += explanation.points
        return explanation.points

    def _tier_check(self, member_id, value, at, tiers_by_id, outcome, now) -> None:
        """:func:`rewards.services.tier_upgrade_check` on the batch's view of the member."""
        qualified = tier_for_value(value=value, tiers=self.tiers)
        status = self.statuses.get(member_id)
        if status is None:
            self._tier_assign(member_id, qualified, None, outcome, now)
            return
        if status.source == MemberTier.Source.MANUAL and (
            status.manual_until is None or status.manual_until >= timezone.localdate(at)
        ):
            return
        current = tiers_by_id.get(status.tier_id)
        if current is not None and qualified.rank <= current.rank:
            if qualified.rank == current.rank and status.below_since is not None:
                status.below_since = None
                status.dirty = True
            return
        self._tier_assign(member_id, qualified, current, outcome, now)

    def _tier_assign(self, member_id, tier, from_tier, outcome, now) -> None:
        status = self.statuses.get(member_id)
        if status is None:
            status = self.statuses[member_id] = _TierStatus(
                tier_id=tier.id, source=MemberTier.Source.QUALIFIED, since=now,
                manual_until=None, below_since=None, exists=False,
            )
        status.tier_id, status.source, status.since = tier.id, MemberTier.Source.QUALIFIED, now
        status.manual_until, status.below_since, status.dirty = None, None, True
        outcome.tier_changes.append(TierChange(
            member_id=member_id, from_tier=from_tier, to_tier=tier,
            reason=TierChange.Reason.QUALIFIED, created_at=now,
        ))

    def _stamps(self, receipt, day, purchase_id, stamped, outcome, now) -> None:
        """:func:`rewards.services._stamps_apply`: counts go on from the database's."""
        for rule in self.stamp_rules:
            if rule.category_id is not None and not any(
                line.category_id == rule.category_id for line in receipt.lines
            ):
                continue
            key = (rule.id, receipt.member_id)
            if day >= rule.starts_on:
                stamped[key] += 1
            count = self.stamp_counts.get(key, 0) + stamped[key]
            if count == 0 or count % rule.every:
                continue
            outcome.vouchers.append(Voucher(
                code=voucher_code_generate(), reward=rule.reward, member_id=receipt.member_id,
                source=Voucher.Source.STAMP, issued_at=now,
                expires_at=now + timedelta(days=rule.reward.voucher_valid_days),
                purchase_id=purchase_id, idempotency_key=f"stamp:{rule.id}:{purchase_id}",
            ))

    def _referral(self, receipt, outcome) -> None:
        """:func:`rewards.services._referral_qualify` for the member's pending referral."""
        referral = self.referrals.get(receipt.member_id)
        if referral is None or receipt.total < self.referral_min_purchase:
            return
        for member_id, points, role in (
            (referral.referrer_id, self.referral_points[0], "referrer"),
            (referral.referred_id, self.referral_points[1], "referred"),
        ):
            if points:
                outcome.postings.append((PostingRequest(
                    member_id=member_id, amount=points, kind=PointsEntry.Kind.REFERRAL,
                    idempotency_key=f"referral:{referral.id}:{role}",
                    reference=f"referral:{referral.id}",
                ), False))
        outcome.referrals.append(referral.id)
        del self.referrals[receipt.member_id]

    # -------------------------------------------------------------- writing

    def write(self, outcome: _Outcome) -> None:
        """Write the tiers, their history, the vouchers and the referrals the run made."""
        new = [(member_id, s) for member_id, s in self.statuses.items()
               if s.dirty and not s.exists]
        changed = [(member_id, s) for member_id, s in self.statuses.items()
                   if s.dirty and s.exists]
        MemberTier.objects.bulk_create([
            MemberTier(member_id=member_id, tier_id=s.tier_id, source=s.source, since=s.since,
                       manual_until=s.manual_until, below_since=s.below_since)
            for member_id, s in new
        ], batch_size=2000)
        if changed and set_based():
            # Django's bulk_update builds a CASE per row and column: slow in Python.
            arrays_execute(
                f"UPDATE {_TIER_TABLE} t SET tier_id = v.tier_id, source = v.source, "
                "since = v.since, manual_until = v.manual_until, "
                "below_since = v.below_since FROM unnest(%s::bigint[], %s::bigint[], "
                "%s::text[], %s::timestamptz[], %s::date[], %s::date[]) "
                "AS v(member_id, tier_id, source, since, manual_until, below_since) "
                "WHERE t.member_id = v.member_id",
                [list(column) for column in zip(*(
                    (member_id, s.tier_id, s.source, s.since, s.manual_until,
                     s.below_since)
                    for member_id, s in changed
                ), strict=True)],
            )
        elif changed:
            MemberTier.objects.bulk_update([
                MemberTier(member_id=member_id, tier_id=s.tier_id, source=s.source,
                           since=s.since, manual_until=s.manual_until,
                           below_since=s.below_since)
                for member_id, s in changed
            ], ["tier", "source", "since", "manual_until", "below_since"], batch_size=2000)
        TierChange.objects.bulk_create(outcome.tier_changes, batch_size=2000)
        Voucher.objects.bulk_create(outcome.vouchers, batch_size=2000)
        if outcome.referrals:
            Referral.objects.filter(id__in=outcome.referrals).update(
                status=Referral.Status.REWARDED, rewarded_at=timezone.now()
            )


def _pending_referrals(member_ids: list[int]):
    """Return the pending referrals of these (referred) members, newest first."""
    if not set_based():
        return Referral.objects.filter(
            referred_id__in=member_ids, status=Referral.Status.PENDING
        ).order_by("-id")
    return [
        Referral(id=pk, referrer_id=referrer_id, referred_id=referred_id,
                 status=Referral.Status.PENDING)
        for pk, referrer_id, referred_id in arrays_execute(
            f"SELECT id, referrer_id, referred_id FROM {Referral._meta.db_table} "
            "WHERE referred_id = ANY(%s::bigint[]) AND status = %s ORDER BY id DESC",
            [member_ids, Referral.Status.PENDING],
        )
    ]


def _tier_rows_lock(member_ids: list[int]) -> list[tuple]:
    """Lock these members' tier rows in member order; return their columns."""
    columns = ("member_id", "tier_id", "source", "since", "manual_until", "below_since")
    if not set_based():
        return list(MemberTier.objects.select_for_update().filter(member_id__in=member_ids)
                    .order_by("member_id").values_list(*columns))
    return arrays_execute(
        f"SELECT {', '.join(columns)} FROM {_TIER_TABLE} WHERE member_id = ANY(%s::bigint[]) "
        "ORDER BY member_id FOR UPDATE",
        [member_ids],
    )


def _qualifying_baselines(
    *, receipts: list[ReceiptData], indexes: list[int], starts: dict[int, datetime | None],
    basis: str,
) -> dict[int, Decimal]:
    """Return, per receipt, the member's qualifying value in the receipt's window as the
    database holds it now (before the batch): :func:`member_qualifying_value` for each."""
    if not indexes:
        return {}
    if not set_based():
        return {
            index: member_qualifying_value(
                member_id=receipts[index].member_id, at=receipts[index].purchased_at
            )
            for index in indexes
        }
    if basis == TierBasis.POINTS:
        source = (
            f"SELECT SUM(e.amount) FROM {_LEDGER_TABLE} e WHERE e.member_id = v.member_id "
            "AND e.kind IN (%s, %s) AND e.created_at <= v.until "
            "AND (v.since IS NULL OR e.created_at >= v.since)"
        )
        params = [PointsEntry.Kind.ACCRUAL, PointsEntry.Kind.RETURN]
    else:
        source = (
            f"SELECT SUM(p.total - p.refunded_total) FROM {_PURCHASE_TABLE} p "
            "WHERE p.member_id = v.member_id AND p.purchased_at <= v.until "
            "AND (v.since IS NULL OR p.purchased_at >= v.since)"
        )
        params = []
    rows = arrays_execute(
        f"SELECT v.idx, COALESCE(({source}), 0) FROM unnest(%s::integer[], %s::bigint[], "
        "%s::timestamptz[], %s::timestamptz[]) AS v(idx, member_id, since, until)",
        [*params, indexes, [receipts[i].member_id for i in indexes],
         [starts[i] for i in indexes], [receipts[i].purchased_at for i in indexes]],
    )
    return {index: Decimal(value) for index, value in rows}


def _stamp_baselines(
    *, rules: list[StampRule], receipts: list[ReceiptData]
) -> dict[tuple[int, int], int]:
    """Return each member's count of purchases on each stamp card before the batch,
    counted as :func:`rewards.services._stamps_apply` counts them.

    Only members with a receipt the card counts (one with a line in its category) are
    looked up: for the others the card is not checked at all.
    """
    counts: dict[tuple[int, int], int] = {}
    for rule in rules:
        members = sorted({
            receipt.member_id for receipt in receipts
            if rule.category_id is None
            or any(line.category_id == rule.category_id for line in receipt.lines)
        })
        if not members:
            continue
        if set_based():
            counts.update(((rule.id, member_id), count)
                          for member_id, count in _stamp_counts_read(rule, members))
            continue
        purchases = Purchase.objects.filter(
            member_id__in=members, purchased_at__date__gte=rule.starts_on
        )
        if rule.category_id is not None:
            purchases = purchases.filter(lines__category_id=rule.category_id)
        for member_id, count in purchases.values("member_id").annotate(
            count=Count("id", distinct=True)
        ).values_list("member_id", "count"):
            counts[(rule.id, member_id)] = count
    return counts


def _stamp_counts_read(rule: StampRule, member_ids: list[int]) -> list[tuple[int, int]]:
    """Return (member id, purchases the stamp card counts) on PostgreSQL: the same count
    as the ORM's, with the start day as a time so the (member, time) index serves it."""
    since = timezone.make_aware(datetime.combine(rule.starts_on, time.min))
    in_category = ""
    params: list = [member_ids, since]
    if rule.category_id is not None:
        in_category = (
            f"AND EXISTS (SELECT 1 FROM {_LINE_TABLE} l WHERE l.purchase_id = p.id "
            "AND l.category_id = %s)"
        )
        params.append(rule.category_id)
    return arrays_execute(
        f"SELECT p.member_id, count(*) FROM {_PURCHASE_TABLE} p "
        f"WHERE p.member_id = ANY(%s::bigint[]) AND p.purchased_at >= %s {in_category} "
        "GROUP BY p.member_id",
        params,
    )


__all__ = [
    "BatchRecording", "ReceiptData", "ReceiptProgramme", "purchases_record_batch",
    "receipt_programme_load", "set_based",
]
