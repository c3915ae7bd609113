"""Benchmark: export every member to CSV (with formula escaping) next to PostgreSQL's COPY.

Each measurement runs in a fresh child process (``django.setup()`` included, as a
Celery worker would be), so its peak memory is its own:

- **export**: the member list's export URL (``/admin/members/member/export/?format=csv``)
  through Django's test client, as a superuser (personal data) and as an Analyst
  (pseudonymised: member key, no contact data). With no broker the background job
  runs in-process, so the time is the whole export: the view, the job, PostgreSQL's
  ``COPY`` of the list's query with the escaping done in SQL, the file in the media
  storage.
- **COPY**: ``COPY (SELECT <the same columns> FROM members_member ORDER BY id) TO STDOUT
  CSV`` read through psycopg 3 into a file: the yardstick, with no escaping at all.

It prints seconds, rows per second and the ratio ``COPY seconds / export seconds``
(goal from issue 3: at least 0.5), and the child's peak resident memory (``ru_maxrss``;
goal: under 100 MB) next to its resident memory before the export started. Each is run
``--repeat`` times (default 3), alternating; the median is shown.

    python bench/member_export.py [--repeat 3] [--tracemalloc]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_SUPERUSER = "bench-superuser"
BENCH_ANALYST = "bench-analyst"
RATIO_GOAL = 0.5
MEMORY_GOAL_MB = 100


def django_setup() -> None:
    """Set Django up as production runs it: no DEBUG, no test-runner instrumentation."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty_admin.settings.local")
    os.environ["DEBUG"] = "0"
    os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    # The in-process path: the job runs inside the request, measured whole.
    os.environ.pop("CELERY_BROKER_URL", None)
    import django

    django.setup()


def rss_mb() -> float:
    """Return this process's current resident memory in MB (Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def users() -> None:
    """Create the bench superuser and Analyst if missing (in the parent, once)."""
    import secrets

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user_model = get_user_model()
    if not user_model.objects.filter(username=BENCH_SUPERUSER).exists():
        user_model.objects.create_superuser(
            BENCH_SUPERUSER, "bench@example.com", secrets.token_urlsafe(24)
        )
    analyst = user_model.objects.filter(username=BENCH_ANALYST).first()
    if analyst is None:
        analyst = user_model.objects.create_user(
            BENCH_ANALYST, password=secrets.token_urlsafe(24), is_staff=True
        )
        analyst.groups.add(Group.objects.get(name="Analyst"))


def child_export(username: str, use_tracemalloc: bool) -> dict:
    """Export the whole member list as ``username``; return time, rows and memory."""
    django_setup()
    import tracemalloc

    from django.contrib.auth import get_user_model
    from django.test import Client

    from members.models import ExportJob

    user = get_user_model().objects.get(username=username)
    client = Client()
    client.force_login(user)
    before = rss_mb()
    if use_tracemalloc:
        tracemalloc.start()
    started = time.perf_counter()
    response = client.get("/admin/members/member/export/?format=csv")
    if response.streaming:  # a small database: the export streams in the response
        size = sum(len(chunk) for chunk in response.streaming_content)
    seconds = time.perf_counter() - started
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if use_tracemalloc else None
    job = ExportJob.objects.filter(user=user).latest("id")
    if not response.streaming:
        size = job.file.size if job.file else 0
    result = {
        "seconds": seconds, "rows": job.rows_done, "status": job.status, "bytes": size,
        "personal_data": job.personal_data, "rss_before_mb": before, "peak_mb": peak_mb(),
        "tracemalloc_peak_mb": traced, "error": job.error,
    }
    if job.file:
        job.file.delete(save=False)
    job.delete()
    return result


def child_copy(use_tracemalloc: bool) -> dict:
    """COPY the same columns of every member, unescaped, into a file; return time and rows."""
    django_setup()
    import tracemalloc

    import psycopg
    from django.db import connection

    from members.exports import export_columns, export_resource_for
    from members.models import Member

    columns = export_columns(export_resource_for(Member), personal_data=True)
    names = ", ".join(connection.ops.quote_name(column.path) for column in columns)
    statement = f"COPY (SELECT {names} FROM members_member ORDER BY id) TO STDOUT CSV"
    connection.ensure_connection()
    before = rss_mb()
    if use_tracemalloc:
        tracemalloc.start()
    rows = size = 0
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, psycopg.ClientCursor(connection.connection) as cur:
        with cur.copy(statement) as copy:
            for data in copy:
                out.write(data)
                rows += 1
        size = out.tell()
    seconds = time.perf_counter() - started
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if use_tracemalloc else None
    return {"seconds": seconds, "rows": rows, "bytes": size, "rss_before_mb": before,
            "peak_mb": peak_mb(), "tracemalloc_peak_mb": traced, "statement": statement}


def run_child(*args: str) -> dict:
    """Run one measurement in a fresh process and return its JSON result."""
    completed = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )
    if completed.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also trace Python allocations (slows the runs down)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    flag = ["--tracemalloc"] if args.tracemalloc else []
    if args.child:
        kind, *rest = args.child
        traced = "--tracemalloc" in rest
        if kind == "copy":
            result = child_copy(traced)
        else:
            result = child_export(rest[0], traced)
        print(json.dumps(result))
        return

    django_setup()
    from django.db import connection

    from members.models import Member

    if connection.vendor != "postgresql":
        raise SystemExit("This benchmark needs PostgreSQL (DATABASE_URL).")
    users()
    members = Member.objects.count()
    print(f"Member export to CSV at {members:,} members, {args.repeat} runs each "
          f"(median), each run in a fresh process; load average "
          f"{open('/proc/loadavg').read().split()[0]}")
    runs: dict[str, list[dict]] = {"copy": [], "superuser": [], "analyst": []}
    for _ in range(args.repeat):
        runs["copy"].append(run_child("copy", *flag))
        runs["superuser"].append(run_child("export", BENCH_SUPERUSER, *flag))
        runs["analyst"].append(run_child("export", BENCH_ANALYST, *flag))

    copy_seconds = statistics.median(run["seconds"] for run in runs["copy"])
    print(f"COPY statement: {runs['copy'][0]['statement']}")
    header = (f"{'what':<48} {'rows':>10} {'seconds':>8} {'rows/s':>10} {'ratio':>6} "
              f"{'MB':>6} {'peak RSS':>9} {'RSS before':>10}")
    if args.tracemalloc:
        header += f" {'traced':>7}"
    print(header)
    labels = {
        "copy": "PostgreSQL COPY ... ORDER BY id (no escaping)",
        "superuser": "export, superuser (personal data, escaped)",
        "analyst": "export, Analyst (member key, escaped)",
    }
    for name, label in labels.items():
        results = runs[name]
        seconds = statistics.median(run["seconds"] for run in results)
        rows = results[-1]["rows"]
        peak = max(run["peak_mb"] for run in results)
        before = statistics.median(run["rss_before_mb"] for run in results)
        ratio = copy_seconds / seconds if seconds else 0
        line = (f"{label:<48} {rows:>10,} {seconds:>8.2f} {rows / seconds:>10,.0f} "
                f"{ratio:>6.2f} {results[-1]['bytes'] / 2**20:>6.0f} {peak:>7.0f}MB "
                f"{before:>8.0f}MB")
        if args.tracemalloc:
            line += f" {max(run['tracemalloc_peak_mb'] or 0 for run in results):>5.1f}MB"
        flags = []
        if name != "copy" and ratio < RATIO_GOAL:
            flags.append(f"ratio < {RATIO_GOAL}")
        if peak >= MEMORY_GOAL_MB:
            flags.append(f"peak >= {MEMORY_GOAL_MB} MB")
        if name != "copy" and any(run["status"] != "done" for run in results):
            flags.append("NOT DONE: " + results[-1]["error"])
        print(line + ("  " + ", ".join(flags) if flags else ""), flush=True)
    print("seconds: one run, median; ratio: COPY seconds / these seconds (goal >= "
          f"{RATIO_GOAL}); peak RSS: the child process's maximum resident memory, "
          f"Django included (goal < {MEMORY_GOAL_MB} MB)")


if __name__ == "__main__":
    main()
