"""Benchmark: the dashboards' roll-ups and pages at full scale (PostgreSQL).

1. The full rebuild of every roll-up from the first day of history, in one run
   (goal: a two-year history under 10 minutes).
2. The nightly job for one day: the roll-up of a day (goal under 30 s), timed twice:
   as if the day had never been rolled up (every member of the day changed; rolled
   back), and again as it is (rolled up before: nobody's days changed). Then the two
   days the job rolls up, and the lifetime value estimate over two years of
   member-days (printed apart).
3. The live refresh of today that a dashboard does at most every five minutes.
4. Each dashboard page through Django's test client as a superuser (the whole
   request), for the default period (last 30 days) and for the last 12 months:
   3 warm-ups, then N timed requests; median and p95 in ms and SQL queries per request
   (goal: under 500 ms). Today's live refresh is kept out of the timed requests (it
   runs at most every five minutes; its own time is item 3). The load average is
   printed with every figure.

    DATABASE_URL=postgres://... python bench/dashboards.py [--requests 20] [--skip-rebuild]
        [--skip-nightly] [--pages overview retention ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WARM_UPS = 3
GOAL_MS = 500.0
BENCH_USER = "bench-dashboards"

PAGES = ["overview", "points", "retention", "acquisition", "value", "feedback", "compare",
         "support", "methods"]


SLUGS = {"compare": "before-after", "methods": "how-we-compute"}


def django_setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty_admin.settings.local")
    os.environ["DEBUG"] = "0"
    os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    import django

    django.setup()


def seconds(started: float) -> str:
    return f"{time.monotonic() - started:.1f} s"


def scale() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM members_member), (SELECT count(*) FROM "
            "members_purchase), (SELECT count(*) FROM members_purchase WHERE member_id IS NULL),"
            " (SELECT count(*) FROM members_pointsentry), (SELECT min(purchased_at)::date FROM "
            "members_purchase), (SELECT max(purchased_at)::date FROM members_purchase)"
        )
        members, purchases, other, ledger, first, last = cursor.fetchone()
    print(f"Data: {members:,} members, {purchases:,} purchases ({other:,} without a member), "
          f"{ledger:,} ledger rows, purchases from {first} to {last}")


def rebuild() -> None:
    from loyalty_admin.dashboards import rollups

    started = time.monotonic()
    rollups.rollup_rebuild()
    total = time.monotonic() - started
    print(f"Full rebuild: {total:.1f} s "
          f"({'meets' if total < 600 else 'MISSES'} the 10-minute goal), {load()}")
    table_sizes()


def table_sizes() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, n_live_tup, pg_size_pretty(pg_total_relation_size(relid)) "
            "FROM pg_stat_user_tables WHERE relname LIKE 'loyalty_admin_%%' ORDER BY relname"
        )
        print("Roll-up tables: " + "; ".join(f"{name[14:]} {rows:,} rows {size}"
                                             for name, rows, size in cursor.fetchall()))


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def first_rollup(day) -> float:
    """Time the roll-up of ``day`` as if it had never been rolled up; leave nothing.

    The day's member-days are deleted first, so every member of the day counts as
    changed (the worst case for the member count parts: a day no live refresh rolled
    up); the whole transaction is then rolled back.
    """
    from django.db import connection, transaction

    from loyalty_admin.dashboards import rollups

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM loyalty_admin_memberday WHERE day = %s", [day])
        started = time.monotonic()
        rollups.rollup_days(first=day, last=day, trigger=rollups.TRIGGER_NIGHTLY)
        took = time.monotonic() - started
        transaction.set_rollback(True)
    return took


def nightly() -> None:
    from django.db import connection
    from django.utils import timezone

    from loyalty_admin.dashboards import rollups

    started = time.monotonic()
    with connection.cursor() as cursor:
        # What autovacuum does soon after a rebuild's ten million inserts: without it the
        # covering index of the member-days cannot answer alone (no page all-visible).
        cursor.execute("VACUUM (ANALYZE) loyalty_admin_memberday")
        cursor.execute("ANALYZE")
    print(f"Vacuum of the member-days and ANALYZE: {seconds(started)}, {load()}")
    yesterday = timezone.localdate() - timedelta(days=1)
    day = first_rollup(yesterday)
    print(f"Nightly roll-up of one day ({yesterday}) never rolled up before (every member "
          f"of the day changed, rolled back): {day:.1f} s "
          f"({'meets' if day < 30 else 'MISSES'} the 30-second goal), {load()}")
    started = time.monotonic()
    rollups.rollup_days(first=yesterday, last=yesterday, trigger=rollups.TRIGGER_NIGHTLY)
    day = time.monotonic() - started
    print(f"Nightly roll-up of one day ({yesterday}) rolled up before (no member changed): "
          f"{day:.1f} s ({'meets' if day < 30 else 'MISSES'} the 30-second goal), {load()}")
    started = time.monotonic()
    rollups.rollup_days(first=yesterday - timedelta(days=1), last=yesterday,
                        trigger=rollups.TRIGGER_NIGHTLY)
    print(f"Nightly roll-up of the two days the job rebuilds: {seconds(started)}, {load()}")
    started = time.monotonic()
    rows = rollups.value_estimates_compute(as_of=yesterday)
    print(f"Lifetime value estimate (two years of member-days, {rows} groups): "
          f"{seconds(started)}, {load()}")
    started = time.monotonic()
    rollups.rollup_today_refresh(max_age_seconds=0)
    print(f"Live refresh of today (at most every 5 minutes, on a page view): "
          f"{seconds(started)}, {load()}")


def pages(requests: int, names: list[str]) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from loyalty_admin.dashboards import rollups

    user, _created = get_user_model().objects.get_or_create(
        username=BENCH_USER, defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    # Today was just rolled up: keep the live refresh (item 3) out of the timings.
    rollups.LIVE_MAX_AGE_SECONDS = 10 ** 6
    rollups.rollup_today_refresh(max_age_seconds=0)
    worst = 0.0
    for query in ("", "preset=last_365"):
        print(f"Pages, {'last 30 days' if not query else 'last 12 months'}:")
        for name in names:
            url = f"/admin/dashboards/{SLUGS.get(name, name)}/"
            url += f"?{query}" if query and name not in ("support", "methods", "compare") else ""
            for _ in range(WARM_UPS):
                response = client.get(url)
            if response.status_code != 200:
                print(f"  {name:12} HTTP {response.status_code}")
                continue
            timings = []
            for _ in range(requests):
                with CaptureQueriesContext(connection) as queries:
                    started = time.perf_counter()
                    client.get(url)
                    timings.append((time.perf_counter() - started) * 1000)
            timings.sort()
            median = statistics.median(timings)
            p95 = timings[max(0, round(0.95 * len(timings)) - 1)]
            worst = max(worst, p95)
            print(f"  {name:12} median {median:7.1f} ms  p95 {p95:7.1f} ms  "
                  f"{len(queries.captured_queries)} queries, {load()}")
    print(f"Slowest page p95: {worst:.0f} ms ({'meets' if worst < GOAL_MS else 'MISSES'} "
          f"the {GOAL_MS:.0f} ms goal)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--skip-rebuild", action="store_true")
    parser.add_argument("--skip-nightly", action="store_true")
    parser.add_argument("--pages", nargs="+", choices=PAGES, default=PAGES,
                        help="Only these pages (default: every one).")
    args = parser.parse_args()
    django_setup()
    print(f"Load average: {os.getloadavg()[0]:.2f}")
    scale()
    if not args.skip_rebuild:
        rebuild()
    if not args.skip_nightly:
        nightly()
    pages(args.requests, args.pages)


if __name__ == "__main__":
    main()
