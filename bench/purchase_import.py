"""Benchmark: importing purchases with their lines, points accrual included, next to COPY.

Generates a CSV of ``--purchases`` receipts (1 to 3 lines each, one row per line) for
active members of the seeded database, in the format Russian Excel writes (``;``,
decimal comma, ``dd.mm.yyyy HH:MM``, UTF-8 with BOM), then:

1. checks it with :func:`members.importing.runner.import_job_preview` (no writes);
2. imports it with :func:`members.importing.runner.import_job_apply`, all-or-nothing
   (one transaction, as the screens do by default): the file is read and checked
   again, and each batch of receipts goes through
   :func:`rewards.receipts.purchases_record_batch`, which gives exactly what
   :func:`rewards.services.purchase_record` gives receipt by receipt: the earning
   rules, tier multipliers, campaign multipliers, tier upgrades, stamps and referral
   bonuses all apply and every accrual is a ledger row;
3. loads the same file with PostgreSQL's ``COPY FROM`` into a scratch table of text
   columns, as the yardstick of what the server does with the bytes alone;
4. with ``--one-by-one N`` (default 1,000 receipts), imports a second file of N
   receipts through the previous path, :func:`rewards.services.purchase_record` receipt
   by receipt, for comparison.

It prints rows and receipts per second of each, the import's SQL statements and the
CPU seconds of this process (the rest of the wall time is the server, or waiting for a
CPU on a busy machine), the load average, peak memory, and checks afterwards that every
touched member's cached balance equals their ledger's sum. The issue's goal is at least
5,000 rows/s with accrual and every rule kept.

Run with ``DATABASE_URL`` pointing at a PostgreSQL seeded by ``manage.py demo_seed`` and
``manage.py demo_programme`` (tiers, earning rules, a stamp card):

    python bench/purchase_import.py [--purchases 100000] [--one-by-one 1000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import hashlib
import io
import os
import pstats
import random
import resource
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def django_setup(media_root: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty_admin.settings.local")
    os.environ.setdefault("DEBUG", "0")  # as in production: no query log in memory
    os.environ["MEDIA_ROOT"] = media_root  # the uploaded file lives in a scratch directory
    import django

    django.setup()


def csv_generate(path: Path, purchases: int, seed: int) -> tuple[int, list[int]]:
    """Write the file; return its number of data rows and the members it names."""
    from django.utils import timezone

    from members.models import Member, ProductCategory, Store

    rng = random.Random(seed)
    members = list(
        Member.objects.filter(status=Member.Status.ACTIVE).values_list("id", "card_number")
    )
    if not members:
        raise SystemExit("No active members: seed the database first (manage.py demo_seed).")
    stores = list(Store.objects.values_list("code", flat=True))
    categories = list(ProductCategory.objects.values_list("code", flat=True)) + [""]
    run = hashlib.sha1(str(time.time()).encode()).hexdigest()[:6]  # noqa: S324 - a label
    now = timezone.localtime()
    rows = 0
    touched = set()
    with path.open("w", encoding="utf-8-sig", newline="") as target:
        writer = csv.writer(target, delimiter=";")
        writer.writerow(["Магазин", "Номер чека", "Номер карты", "Дата покупки", "Артикул",
                         "Категория", "Кол-во", "Сумма"])
        for number in range(purchases):
            member_id, card = rng.choice(members)
            touched.add(member_id)
            store = rng.choice(stores)
            when = (now - timedelta(minutes=rng.randint(60, 60 * 24 * 60))).strftime(
                "%d.%m.%Y %H:%M"
            )
            for line in range(rng.randint(1, 3)):
                kopecks = rng.randint(4_000, 500_000)
                amount = f"{kopecks // 100:,}".replace(",", "\u00a0") + f",{kopecks % 100:02d}"
                writer.writerow([
                    store, f"BENCH-{run}-{number}", card, when, f"SKU-{line}-{rng.randint(1, 999)}",
                    rng.choice(categories), "1", amount,
                ])
                rows += 1
    return rows, sorted(touched)


def job_create(path: Path):
    from django.contrib.auth import get_user_model
    from django.core.files import File

    from members.models import ImportJob

    user, _created = get_user_model().objects.get_or_create(
        username="bench-import", defaults={"is_staff": True, "is_superuser": True}
    )
    content = path.read_bytes()
    job = ImportJob(
        kind="purchases", original_name=path.name, file_size=len(content),
        file_sha256=hashlib.sha256(content).hexdigest(), created_by=user,
    )
    with path.open("rb") as source:
        job.file.save(path.name, File(source), save=False)
    job.save()
    return job


def copy_from(path: Path) -> float:
    """Load the file with COPY FROM into a scratch table; return the seconds it took."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_purchase_copy (store text, receipt text, card text, "
            "purchased_at text, sku text, category text, quantity text, amount text)"
        )
        started = time.perf_counter()
        with cursor.copy(
            "COPY bench_purchase_copy FROM STDIN (FORMAT csv, DELIMITER ';', HEADER true)"
        ) as copy, path.open("rb") as source:
            source.read(3)  # the BOM: COPY does not expect one
            while chunk := source.read(1 << 20):
                copy.write(chunk)
        elapsed = time.perf_counter() - started
        cursor.execute("SELECT count(*) FROM bench_purchase_copy")
        copied = cursor.fetchone()[0]
        cursor.execute("DROP TABLE bench_purchase_copy")
    print(f"  COPY FROM loaded {copied:,} rows")
    return elapsed


def balances_check(member_ids: list[int]) -> int:
    """Return how many of these members' balances differ from their ledger's sum."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM members_member m LEFT JOIN (SELECT member_id, "
            "sum(amount) AS total FROM members_pointsentry WHERE member_id = ANY(%s) "
            "GROUP BY member_id) l ON l.member_id = m.id WHERE m.id = ANY(%s) "
            "AND m.points_balance <> coalesce(l.total, 0)",
            [member_ids, member_ids],
        )
        return cursor.fetchone()[0]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def server_cpu_seconds() -> float | None:
    """CPU seconds of the PostgreSQL backend serving this connection, when the server
    runs on this machine (read from /proc), else None."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class StatementCount:
    """Count the SQL statements run on the default connection and time them by the
    start of their text (a cheap wrapper; COPY passes no wrapper and is not counted)."""

    def __init__(self):
        self.count = 0
        self.seconds: dict[str, float] = {}

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            label = " ".join(sql.split())[:90]
            self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - started

    def print_slowest(self, count: int = 12) -> None:
        print("  slowest statements (seconds in total, start of the SQL):")
        for label, seconds in sorted(self.seconds.items(), key=lambda item: -item[1])[:count]:
            print(f"  {seconds:8.2f}  {label}")


def import_timed(
    job, *, profiler=None, one_by_one: bool = False, statements: bool = False
) -> tuple[float, float, int]:
    """Confirm and import the previewed job; return wall seconds, CPU seconds, statements."""
    from django.db import connection

    from members.importing import runner
    from rewards.importing import PurchasesKind

    runner.import_job_confirm(job)
    counter = StatementCount()
    batch_apply = PurchasesKind.apply
    if one_by_one:
        PurchasesKind.apply = PurchasesKind._apply_one_by_one
    try:
        cpu = cpu_seconds()
        server_cpu = server_cpu_seconds()
        started = time.perf_counter()
        with connection.execute_wrapper(counter):
            if profiler:
                profiler.enable()
            runner.import_job_apply(job)
            if profiler:
                profiler.disable()
        elapsed = time.perf_counter() - started
        if server_cpu is not None:
            print(f"  CPU seconds of the PostgreSQL backend during the import: "
                  f"{server_cpu_seconds() - server_cpu:.1f}")
        if statements:
            counter.print_slowest()
        return elapsed, cpu_seconds() - cpu, counter.count
    finally:
        PurchasesKind.apply = batch_apply


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--purchases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--one-by-one", type=int, default=1000,
                        help="receipts to import receipt by receipt for comparison (0: none)")
    parser.add_argument("--profile", action="store_true",
                        help="profile the import and print the top functions")
    parser.add_argument("--statements", action="store_true",
                        help="print the import's slowest SQL statements")
    options = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="bench-import-")
    django_setup(scratch)
    from django.db import connection

    from members.importing import runner
    from members.models import ImportJob, PointsEntry, Purchase

    if connection.vendor != "postgresql":
        raise SystemExit("Run on PostgreSQL (DATABASE_URL): COPY is the yardstick.")
    path = Path(scratch) / "purchases.csv"
    started = time.perf_counter()
    rows, members = csv_generate(path, options.purchases, options.seed)
    print(f"  generated {rows:,} rows ({options.purchases:,} receipts, "
          f"{path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s")

    copy_seconds = copy_from(path)
    purchases_before = Purchase.objects.count()
    accruals_before = PointsEntry.objects.filter(kind=PointsEntry.Kind.ACCRUAL).count()

    job = job_create(path)
    started = time.perf_counter()
    runner.import_job_preview(job)
    preview_seconds = time.perf_counter() - started
    if job.status != ImportJob.Status.PREVIEWED or job.counts.get("error"):
        raise SystemExit(f"Preview refused the file: {job.message} {job.errors[:5]}")
    profiler = cProfile.Profile() if options.profile else None
    print(f"  load average before the import: {load_average()}")
    import_seconds, import_cpu, statements = import_timed(
        job, profiler=profiler, statements=options.statements
    )
    print(f"  load average after the import: {load_average()}")

    new_purchases = Purchase.objects.count() - purchases_before
    new_accruals = PointsEntry.objects.filter(kind=PointsEntry.Kind.ACCRUAL).count() - (
        accruals_before
    )
    mismatches = balances_check(members)
    print(f"  import: status {job.status}, counts {job.counts}")
    print(f"  {new_purchases:,} purchases and {new_accruals:,} accruals written; "
          f"members whose balance differs from their ledger: {mismatches}")
    print()
    print(f"  {'':<34}{'seconds':>9}{'rows/s':>10}{'receipts/s':>12}{'of COPY':>9}")
    for label, seconds in (
        ("COPY FROM (scratch table)", copy_seconds),
        ("preview (check, no writes)", preview_seconds),
        ("import with accrual", import_seconds),
    ):
        print(f"  {label:<34}{seconds:>9.1f}{rows / seconds:>10,.0f}"
              f"{options.purchases / seconds:>12,.0f}{copy_seconds / seconds:>9.3f}")
    print(f"  import: {statements:,} SQL statements ({statements / options.purchases:.2f} "
          f"per receipt), {import_cpu:.1f} s CPU in this process "
          f"({import_cpu / import_seconds:.0%} of the wall time)")
    print(f"  goal: 5,000 rows/s with accrual; reached {rows / import_seconds:,.0f} "
          f"({rows / import_seconds / 5000:.0%}); peak memory {peak_mb():.0f} MB")
    if options.one_by_one:
        small = Path(scratch) / "one-by-one.csv"
        small_rows, small_members = csv_generate(small, options.one_by_one, options.seed + 1)
        small_job = job_create(small)
        runner.import_job_preview(small_job)
        seconds, cpu, small_statements = import_timed(small_job, one_by_one=True)
        mismatches += balances_check(small_members)
        print(f"  receipt by receipt (purchase_record), {options.one_by_one:,} receipts: "
              f"{seconds:.1f} s, {small_rows / seconds:,.0f} rows/s, "
              f"{options.one_by_one / seconds:,.0f} receipts/s, {small_statements:,} SQL "
              f"statements ({small_statements / options.one_by_one:.1f} per receipt), "
              f"{cpu:.1f} s CPU; status {small_job.status}")
        speedup = (rows / import_seconds) / (small_rows / seconds)
        print(f"  the batch import is {speedup:.1f} times as fast in rows/s")
    if profiler:
        print()
        stats = pstats.Stats(profiler, stream=(out := io.StringIO()))
        stats.sort_stats("cumulative").print_stats(80)
        print(out.getvalue())
    if mismatches or new_purchases != options.purchases:
        raise SystemExit("Check failed: see above.")


if __name__ == "__main__":
    main()
