"""Benchmark: points postings per second through the ledger service, next to pgbench.

Each client is a separate process (as Gunicorn workers or Celery workers would be)
that calls :func:`members.services.points_post` in a loop for a fixed time: a small
accrual to a random active member, with a unique idempotency key, one transaction
per posting, durable commits. ``pgbench -b tpcb-like`` then runs on the same server
with the same number of clients, as the yardstick of what the server does with a
comparable small write transaction (tpcb-like: three UPDATEs, a SELECT and an INSERT).
The goal from the issue is at least half of pgbench's rate at 4 clients.

Run by ``bench/run.sh`` with ``DATABASE_URL`` pointing at a seeded PostgreSQL; prints
its figures and checks afterwards that every cached balance equals its ledger's sum.

    python bench/ledger_posting.py [--duration 15] [--clients 1,4]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import sys
import time
import traceback
import uuid
from datetime import timedelta
from glob import glob
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
PGBENCH_DATABASE = "pgbench"
PGBENCH_SCALE = 10


def django_setup() -> None:
    """Set Django up in this process (every worker process calls it itself)."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty_admin.settings.local")
    os.environ.setdefault("DEBUG", "0")  # as in production: no query log in memory
    import django

    django.setup()


def active_member_ids() -> list[int]:
    """Return the ids of the members who may earn points."""
    from members.models import Member

    return list(
        Member.objects.filter(status=Member.Status.ACTIVE).values_list("id", flat=True)
    )


def worker(number, run, member_ids, duration, start_barrier, results) -> None:
    """Run :func:`postings_loop`, reporting a failure instead of leaving the parent waiting."""
    try:
        postings_loop(number, run, member_ids, duration, start_barrier, results)
    except BaseException:
        start_barrier.abort()  # release the other clients at once
        results.put(("error", traceback.format_exc()))
        raise


def postings_loop(number, run, member_ids, duration, start_barrier, results) -> None:
    """Post accruals for ``duration`` seconds after the barrier; report the count."""
    django_setup()
    from django.db import connection
    from django.utils import timezone

    from members.models import PointsEntry
    from members.selectors import programme_settings_get
    from members.services import PointsRefused, points_post

    rng = random.Random(f"{run}:{number}")
    posted = refused = 0
    window = timedelta(days=programme_settings_get().return_window_days)

    def post(sequence: int) -> bool:
        # Shaped like a purchase's accrual: pending for the return window, with the
        # earning engine's explanation, as rewards.services posts it.
        points = rng.randint(1, 50)
        try:
            points_post(
                member_id=rng.choice(member_ids), amount=points,
                kind=PointsEntry.Kind.ACCRUAL,
                idempotency_key=f"bench:{run}:{number}:{sequence}", reference="bench",
                available_at=timezone.now() + window if window else None,
                details=[
                    {"step": "base", "rule": "", "amount": f"{points * 20}.00",
                     "rate": "0.05", "points": f"{points}.00"},
                    {"step": "rounding", "mode": "down", "raw": f"{points}.00",
                     "points": points},
                ],
            )
        except PointsRefused:
            return False  # e.g. the member was blocked meanwhile; not counted
        return True

    # Warm up the connection, the statement paths and the caches before timing.
    for sequence in range(50):
        post(-1 - sequence)
    start_barrier.wait()
    started = time.perf_counter()
    deadline = started + duration
    sequence = 0
    while time.perf_counter() < deadline:
        if post(sequence):
            posted += 1
        else:
            refused += 1
        sequence += 1
    results.put(("ok", posted, refused, time.perf_counter() - started))
    connection.close()


def postings_per_second(clients: int, duration: float, member_ids: list[int]) -> float:
    """Run ``clients`` posting processes at once and return postings per second."""
    context = multiprocessing.get_context("spawn")  # each child sets Django up itself
    barrier = context.Barrier(clients)
    results = context.Queue()
    run = uuid.uuid4().hex[:12]
    processes = [
        context.Process(
            target=worker, args=(number, run, member_ids, duration, barrier, results)
        )
        for number in range(clients)
    ]
    for process in processes:
        process.start()
    # Generous timeout: start-up, warm-up and the run itself.
    outcomes = [results.get(timeout=duration + 300) for _ in processes]
    for process in processes:
        process.join()
    errors = [outcome[1] for outcome in outcomes if outcome[0] == "error"]
    if errors:
        raise SystemExit(f"A posting client failed:\n{errors[0]}")
    posted = sum(outcome[1] for outcome in outcomes)
    refused = sum(outcome[2] for outcome in outcomes)
    elapsed = max(outcome[3] for outcome in outcomes)
    if refused:
        print(f"  ({refused} postings refused at {clients} clients, not counted)")
    return posted / elapsed


def pgbench_binary(name: str) -> str:
    """Return the path of a PostgreSQL client program (PGBIN, PATH or Debian's dir)."""
    candidates = []
    if os.environ.get("PGBIN"):
        candidates.append(str(Path(os.environ["PGBIN"]) / name))
    if shutil.which(name):
        candidates.append(shutil.which(name))
    candidates += sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit(f"{name} not found: install PostgreSQL's client programs")


def pgbench_environment() -> dict[str, str]:
    """Return the environment that points libpq programs at DATABASE_URL's server."""
    url = urlparse(os.environ["DATABASE_URL"])
    env = dict(os.environ)
    env.update({
        "PGHOST": url.hostname or "127.0.0.1",
        "PGPORT": str(url.port or 5432),
        "PGUSER": url.username or "postgres",
    })
    if url.password:
        env["PGPASSWORD"] = url.password
    return env


def pgbench_prepare(env: dict[str, str]) -> None:
    """Create and fill the separate ``pgbench`` database (scale 10, one million rows)."""
    psql = pgbench_binary("psql")
    exists = subprocess.run(
        [psql, "-d", "postgres", "-tAc",
         f"SELECT 1 FROM pg_database WHERE datname = '{PGBENCH_DATABASE}'"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout.strip()
    if not exists:
        subprocess.run(
            [pgbench_binary("createdb"), PGBENCH_DATABASE], env=env, check=True
        )
    subprocess.run(
        [pgbench_binary("pgbench"), "-i", "-q", "-s", str(PGBENCH_SCALE), PGBENCH_DATABASE],
        env=env, check=True, capture_output=True,
    )


def pgbench_tps(clients: int, duration: float, env: dict[str, str]) -> float:
    """Run pgbench's TPC-B-like script and return its transactions per second."""
    completed = subprocess.run(
        [pgbench_binary("pgbench"), "-n", "-b", "tpcb-like", "-c", str(clients),
         "-j", str(clients), "-T", str(int(duration)), PGBENCH_DATABASE],
        env=env, check=True, capture_output=True, text=True,
    )
    match = re.search(r"^tps = ([\d.]+)", completed.stdout, re.MULTILINE)
    if not match:
        raise SystemExit(f"pgbench printed no tps line:\n{completed.stdout}")
    return float(match.group(1))


def main() -> None:
    """Measure, print the table and check the ledger invariant."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=15, help="seconds per run")
    parser.add_argument("--clients", default="1,4", help="comma-separated client counts")
    args = parser.parse_args()
    client_counts = [int(count) for count in args.clients.split(",")]

    django_setup()
    from django.db import connection

    from members.selectors import ledger_mismatches

    if connection.vendor != "postgresql":
        raise SystemExit("Run this against PostgreSQL: set DATABASE_URL.")
    member_ids = active_member_ids()
    connection.close()  # the children open their own connections
    env = pgbench_environment()
    pgbench_prepare(env)

    print(f"Ledger postings vs pgbench tpcb-like, {args.duration:g} s per run, "
          f"{len(member_ids):,} active members, {os.cpu_count()} CPUs")
    print(f"{'clients':>7}  {'postings/s':>10}  {'pgbench tps':>11}  {'ratio':>5}")
    for clients in client_counts:
        postings = postings_per_second(clients, args.duration, member_ids)
        tps = pgbench_tps(clients, args.duration, env)
        print(f"{clients:>7}  {postings:>10.0f}  {tps:>11.0f}  {postings / tps:>5.2f}",
              flush=True)

    started = time.perf_counter()
    mismatches = list(ledger_mismatches()[:10])
    seconds = time.perf_counter() - started
    if mismatches:
        print(f"Ledger invariant BROKEN ({seconds:.1f} s to check): {mismatches}")
        raise SystemExit(1)
    print(f"Ledger invariant holds: every cached balance equals its ledger's sum "
          f"(checked in {seconds:.1f} s)")


if __name__ == "__main__":
    main()
