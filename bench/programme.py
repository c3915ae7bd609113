"""Benchmark: tier evaluation, points expiry and redemptions at full scale (issue 4).

On a database seeded by ``manage.py demo_seed`` (1,000,000 members, about ten million
purchases over two years), this script times:

- the first full tier evaluation (``manage.py demo_programme`` creates the demo tiers,
  rules and rewards and evaluates once: that evaluation places every member);
- a steady-state evaluation (the next night: little or nothing changes);
- an evaluation 400 days later (the two-year history has aged out: members enter their
  tier's grace period) and one the night after the longest grace period (downgrades);
- the first points expiry run (12-month expiry over the two-year history: most members
  have points to write off) and a second run the same day (must post nothing);
- redemptions per second through ``rewards.services.reward_redeem``: 1 then 4 client
  processes for 15 s each, redeeming a 1-point reward with unlimited stock for random
  active members with available points, each with a unique idempotency key; then the
  most clients again, each with its own such reward (``reward_redeem`` locks the reward
  row: this shows what that lock costs).

It checks ``members.selectors.ledger_mismatches()`` is empty after the expiry and after
the redemptions, and prints a table of seconds, rows affected and the goals (each
evaluation and each expiry run under 5 minutes), with the slowest SQL statements of
every step. Each redemption client is its own process that calls ``django.setup()``.

    DATABASE_URL=postgres://... python bench/programme.py [--duration 15] [--clients 1,4]

The database is changed for good (tiers, expiry entries, vouchers): run it on a
throwaway copy, as ``bench/run.sh`` does.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import queue
import random
import sys
import time
import traceback
import uuid
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_SECONDS = 300
BENCH_REWARD = "Bench: 1-point reward (unlimited stock)"


def django_setup() -> None:
    """Set Django up in this process (every worker process calls it itself)."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty_admin.settings.local")
    os.environ.setdefault("DEBUG", "0")  # as in production: no query log in memory
    import django

    django.setup()


def load() -> str:
    """Return the 1, 5 and 15-minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class StatementTimer:
    """A database execute wrapper that keeps the slowest statements of a step."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.times[" ".join(str(sql).split())].append(time.perf_counter() - started)

    def slowest(self, count: int = 3) -> list[tuple[float, int, str]]:
        """Return (total seconds, executions, SQL) of the costliest statements."""
        rows = [(sum(t), len(t), sql) for sql, t in self.times.items()]
        return sorted(rows, reverse=True)[:count]


class Steps:
    """Time steps, remember their figures and print the table."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, str, str]] = []

    def run(self, name: str, function, *, goal: str = "", rows=None):
        from django.db import connection

        timer = StatementTimer()
        print(f"-- {name} (load average {load()}) ...", flush=True)
        started = time.perf_counter()
        with connection.execute_wrapper(timer):
            result = function()
        seconds = time.perf_counter() - started
        affected = rows(result) if rows else str(result)
        self.rows.append((name, seconds, affected, goal))
        print(f"   {seconds:.1f} s; {affected}", flush=True)
        for total, executions, sql in timer.slowest():
            print(f"   {total:8.2f} s  x{executions:<5} {sql[:160]}")
        if goal and goal.startswith("<") and seconds > GOAL_SECONDS:
            print(f"   MISSED the goal ({goal})")
        return result

    def print(self) -> None:
        width = max(len(row[0]) for row in self.rows)
        print()
        print(f"{'step':<{width}}  {'seconds':>8}  {'goal':<8}  rows affected")
        for name, seconds, affected, goal in self.rows:
            verdict = ""
            if goal.startswith("<"):
                verdict = " ok" if seconds < GOAL_SECONDS else " MISSED"
            print(f"{name:<{width}}  {seconds:>8.1f}  {goal + verdict:<8}  {affected}")


def evaluation_rows(result) -> str:
    return (f"enrolled {result.enrolled:,}, upgraded {result.upgraded:,}, "
            f"downgraded {result.downgraded:,}, entered grace {result.entered_grace:,}, "
            f"manual ended {result.manual_ended:,}")


def demo_programme(*, nestloop_off: bool = False) -> str:
    """Run ``manage.py demo_programme`` (its first evaluation places every member).

    With ``nestloop_off``, the session forbids nested loops meanwhile: with
    ``rewards_membertier`` empty and analysed (0 pages), the planner takes a Nested Loop
    Anti Join over a sequential scan of that table for the enrolment INSERT, which then
    rescans every row the statement has inserted so far (quadratic; about an hour for
    a million members).
    """
    from django.core.management import call_command
    from django.db import connection

    out = io.StringIO()
    if nestloop_off:
        with connection.cursor() as cursor:
            cursor.execute("SET enable_nestloop = off")
    try:
        call_command("demo_programme", stdout=out)
    finally:
        if nestloop_off:
            with connection.cursor() as cursor:
                cursor.execute("RESET enable_nestloop")
    return out.getvalue().strip()


def invariant_check(steps: Steps, when: str) -> None:
    from members.selectors import ledger_mismatches

    mismatches = steps.run(
        f"ledger invariant check ({when})", lambda: list(ledger_mismatches()[:10]),
        rows=lambda found: f"{len(found)} members whose balance differs from their ledger",
    )
    if mismatches:
        print(f"Ledger invariant BROKEN: {mismatches}")
        raise SystemExit(1)


def bench_reward_id(number: int = 0) -> int:
    """Return a bench reward: 1 point, unlimited stock, no limit, no tier."""
    from rewards.models import Reward

    reward, _created = Reward.objects.get_or_create(
        name=BENCH_REWARD + (f" #{number}" if number else ""),
        defaults={"kind": Reward.Kind.DELIVERY, "points_cost": 1, "stock": None,
                  "per_member_limit": None, "min_tier": None, "voucher_valid_days": 30},
    )
    return reward.id


def members_with_points(count: int = 20000) -> list[int]:
    """Return random active members with at least 50 available (not pending) points."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT m.id FROM (
                SELECT id, points_balance FROM members_member
                WHERE status = 'active' AND points_balance >= 50
                ORDER BY random() LIMIT %s
            ) AS m
            WHERE m.points_balance - coalesce((
                SELECT sum(e.amount) FROM members_pointsentry AS e
                WHERE e.member_id = m.id AND e.available_at > now()
            ), 0) >= 50
            """,
            [count],
        )
        return [row[0] for row in cursor.fetchall()]


def worker(number, run, reward_ids, member_ids, duration, start_barrier, results) -> None:
    """Run :func:`redemptions_loop`, reporting a failure instead of leaving the parent waiting."""
    try:
        reward_id = reward_ids[number % len(reward_ids)]
        redemptions_loop(number, run, reward_id, member_ids, duration, start_barrier, results)
    except BaseException:
        start_barrier.abort()  # release the other clients at once
        results.put(("error", traceback.format_exc()))
        raise


def redemptions_loop(number, run, reward_id, member_ids, duration, start_barrier, results):
    """Redeem for ``duration`` seconds after the barrier; report the counts."""
    django_setup()
    from django.db import connection

    from members.services import PointsRefused
    from rewards.services import reward_redeem

    rng = random.Random(f"{run}:{number}")
    refusals: dict[str, int] = defaultdict(int)

    def redeem(sequence: int) -> bool:
        try:
            reward_redeem(
                member_id=rng.choice(member_ids), reward_id=reward_id, actor=None,
                idempotency_key=f"bench-redeem:{run}:{number}:{sequence}",
            )
        except PointsRefused as refusal:
            refusals[refusal.code] += 1
            return False
        return True

    for sequence in range(20):  # warm up connection, statements and caches
        redeem(-1 - sequence)
    refusals.clear()
    start_barrier.wait()
    started = time.perf_counter()
    deadline = started + duration
    redeemed = sequence = 0
    while time.perf_counter() < deadline:
        redeemed += redeem(sequence)
        sequence += 1
    results.put(("ok", redeemed, dict(refusals), time.perf_counter() - started))
    connection.close()


def redemptions(clients: int, duration: float, reward_ids: list[int], member_ids: list[int]):
    """Run ``clients`` redeeming processes at once, client n redeeming reward_ids[n % len].

    Return (redeemed, refusals by code, seconds, Counter of sampled backend wait events).
    """
    from django.db import connection

    context = multiprocessing.get_context("spawn")  # each child sets Django up itself
    barrier = context.Barrier(clients)
    results = context.Queue()
    run = uuid.uuid4().hex[:12]
    processes = [
        context.Process(
            target=worker,
            args=(number, run, reward_ids, member_ids, duration, barrier, results),
        )
        for number in range(clients)
    ]
    for process in processes:
        process.start()
    # While they run, sample what their server backends are doing (CPU, I/O, locks).
    outcomes, waits, deadline = [], Counter(), time.monotonic() + duration + 300
    while len(outcomes) < clients:
        try:
            outcomes.append(results.get(timeout=0.2))
        except queue.Empty:
            if time.monotonic() > deadline:
                raise SystemExit("The redemption clients did not finish in time.") from None
            waits.update(backend_waits())
    connection.close()
    for process in processes:
        process.join()
    errors = [outcome[1] for outcome in outcomes if outcome[0] == "error"]
    if errors:
        raise SystemExit(f"A redemption client failed:\n{errors[0]}")
    refusals: dict[str, int] = defaultdict(int)
    for outcome in outcomes:
        for code, count in outcome[2].items():
            refusals[code] += count
    return (sum(outcome[1] for outcome in outcomes), dict(refusals),
            max(outcome[3] for outcome in outcomes), waits)


def backend_waits() -> list[str]:
    """Return what every other client backend is doing: its wait event, server CPU, or
    idle (the client is working: Python, Django, the network)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT CASE WHEN state = 'idle' THEN 'client side, between transactions' "
            "WHEN state = 'idle in transaction' THEN 'client side, in a transaction' "
            "ELSE coalesce(wait_event_type || ':' || wait_event, 'server CPU') END "
            "FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND pid <> pg_backend_pid() AND datname = current_database()"
        )
        return [row[0] for row in cursor.fetchall()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=15, help="seconds per redemption run")
    parser.add_argument("--clients", default="1,4", help="comma-separated client counts")
    parser.add_argument(
        "--first-evaluation-nestloop-off", action="store_true",
        help="forbid nested loops during the first evaluation (works around its "
        "quadratic enrolment plan on an empty rewards_membertier; see demo_programme())",
    )
    args = parser.parse_args()
    client_counts = [int(count) for count in args.clients.split(",")]

    django_setup()
    from django.db import connection
    from django.utils import timezone

    from members.models import Member, Purchase
    from members.services import points_expire_due
    from rewards.evaluation import tiers_evaluate
    from rewards.models import Tier, Voucher

    if connection.vendor != "postgresql":
        raise SystemExit("Run this against PostgreSQL: set DATABASE_URL.")
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = %s",
                       [Purchase._meta.db_table])
        purchases = cursor.fetchone()[0]
    print(f"Programme benchmark: {Member.objects.count():,} members, about {purchases:,} "
          f"purchases, {os.cpu_count()} CPUs, load average {load()}")

    steps = Steps()
    goal = f"< {GOAL_SECONDS} s"
    if Tier.objects.exists():
        print("Tiers exist already: the first evaluation ran before; not timed here.")
    else:
        nestloop_off = args.first_evaluation_nestloop_off
        steps.run(
            "demo_programme (1st evaluation)" + (", nestloop off" if nestloop_off else ""),
            lambda: demo_programme(nestloop_off=nestloop_off), goal=goal,
        )
    steps.run("tiers_evaluate, next night", tiers_evaluate, goal=goal, rows=evaluation_rows)
    later = timezone.now() + timedelta(days=400)
    steps.run("tiers_evaluate, 400 days later", lambda: tiers_evaluate(now=later), goal=goal,
              rows=evaluation_rows)
    # The largest grace period of the demo tiers is 90 days: a night after it ends,
    # the members who entered grace above move down.
    after_grace = later + timedelta(days=max(Tier.objects.values_list("grace_days", flat=True)) + 1)
    steps.run("tiers_evaluate, after the grace", lambda: tiers_evaluate(now=after_grace),
              goal=goal, rows=evaluation_rows)
    steps.run("points_expire_due, 1st run", points_expire_due, goal=goal,
              rows=lambda n: f"{n:,} members had points expire")
    second = steps.run("points_expire_due, again", points_expire_due, goal=goal,
                       rows=lambda n: f"{n:,} members had points expire")
    if second:
        print("   A second expiry run the same day posted entries: it should post none.")
    invariant_check(steps, "after expiry")

    reward_id = bench_reward_id()
    member_ids = members_with_points()
    runs = [(f"redemptions, {clients} process(es)", clients, [reward_id])
            for clients in client_counts]
    most = max(client_counts)
    if most > 1:  # the same load without the one reward row every redemption locks
        runs.append((f"redemptions, {most} processes, a reward each", most,
                     [bench_reward_id(number) for number in range(most)]))
    reward_ids = {rid for _name, _clients, ids in runs for rid in ids}
    before = Voucher.objects.filter(reward_id__in=reward_ids).count()
    connection.close()  # the children open their own connections
    print(f"-- redemptions of a 1-point reward (unlimited stock) for {len(member_ids):,} "
          f"random active members with points, {args.duration:g} s per run")
    for name, clients, ids in runs:
        print(f"   {name}, load average {load()} ...", flush=True)
        redeemed, refusals, seconds, waits = redemptions(clients, args.duration, ids, member_ids)
        refused = sum(refusals.values())
        steps.rows.append((
            name, seconds, f"{redeemed:,} redeemed = {redeemed / seconds:.0f}/s, {refused:,} "
            f"refused {refusals or ''}".strip(), "report",
        ))
        print(f"   {redeemed / seconds:.0f} redemptions/s ({redeemed:,} in {seconds:.1f} s, "
              f"{refused:,} refused {refusals or ''})", flush=True)
        samples = sum(waits.values()) or 1
        print("   the clients' server backends, sampled every 0.2 s: " + ", ".join(
            f"{event} {count / samples:.0%}" for event, count in waits.most_common(6)
        ))
    vouchers = Voucher.objects.filter(reward_id__in=reward_ids).count() - before
    print(f"   vouchers issued by the runs (warm-ups included): {vouchers:,}")
    invariant_check(steps, "after redemptions")
    steps.print()


if __name__ == "__main__":
    main()
