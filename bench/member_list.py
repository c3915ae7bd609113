"""Benchmark: the support desk's member list, searches and member page at full scale.

Logged in as a superuser through Django's test client (the whole request: middleware,
admin view, queries, template), it requests the member changelist, a search for each
kind of input support types (phone in several formats, card number, e-mail, part of
a last name, "first last") and a member's change page. For each: 3 warm-up requests,
then 30 timed ones; it prints the median and 95th percentile in milliseconds and the
SQL queries per request. Goal from the issue: list and every search under 100 ms p95
with a small fixed number of queries. When the slowest search misses the goal, its
slowest SQL statement is shown with EXPLAIN ANALYZE.

    python bench/member_list.py [--requests 30]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WARM_UPS = 3
GOAL_MS = 100.0
BENCH_USER = "bench-superuser"


def django_setup() -> None:
    """Set Django up for in-process requests, without the test-runner instrumentation."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty_admin.settings.local")
    # As in production: no DEBUG (it keeps every query in memory) and the test
    # client's host allowed, without setup_test_environment()'s template signals.
    os.environ["DEBUG"] = "0"
    os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    import django

    django.setup()


def phone_formats(digits: str) -> list[tuple[str, str]]:
    """Return the ways support staff type a stored phone such as 79123456789."""
    national = digits[1:]
    return [
        ("phone +7 (912) 345-67-89",
         f"+7 ({national[:3]}) {national[3:6]}-{national[6:8]}-{national[8:]}"),
        ("phone 8 912 345 67 89",
         f"8 {national[:3]} {national[3:6]} {national[6:8]} {national[8:]}"),
        ("phone 9123456789", national),
    ]


def pick_subjects():
    """Return (typical member, member with the longest history, searches to run)."""
    from django.db.models import Count

    from members.models import Member

    # A reproducible "random" member that has every identifier filled in.
    typical = (
        Member.objects.exclude(phone="").exclude(email="").exclude(last_name="")
        .filter(id__gte=Member.objects.order_by("-id").values_list("id", flat=True)[0] // 3)
        .order_by("id").first()
    )
    busiest_id = (
        Member.objects.filter(id__in=Member.objects.order_by("id").values("id")[:2000])
        .annotate(n=Count("points_entries")).order_by("-n").values_list("id", flat=True)[0]
    )
    latin = (
        Member.objects.filter(last_name__regex=r"^[A-Za-z]{6,}$")
        .filter(id__gte=typical.id).order_by("id").first()
    )
    cyrillic = (
        Member.objects.filter(last_name__regex=r"^[А-Яа-яЁё]{6,}$")
        .filter(id__gte=typical.id).order_by("id").first()
    )
    searches = [*phone_formats(typical.phone),
                ("card number", typical.card_number),
                ("e-mail (upper case)", typical.email.upper())]
    for label, member in (("Cyrillic", cyrillic), ("Latin", latin)):
        if member is not None:
            fragment = member.last_name[1:6].lower()
            searches.append((f"name part ({label}) '{fragment}'", fragment))
            searches.append((f"first last ({label})", f"{member.first_name} {member.last_name}"))
    searches.append(("no match", "Zzyzx Qwerty"))
    return typical, Member.objects.get(id=busiest_id), searches


def measure(client, url: str, requests: int):
    """Return (status, timings in ms, queries per request, slowest request's queries)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(WARM_UPS):
        client.get(url)
    timings, query_counts, slowest = [], set(), (0.0, [])
    status = None
    for _ in range(requests):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            elapsed = (time.perf_counter() - started) * 1000
        status = response.status_code
        timings.append(elapsed)
        query_counts.add(len(captured.captured_queries))
        if elapsed > slowest[0]:
            slowest = (elapsed, list(captured.captured_queries))
    return status, timings, query_counts, slowest[1]


def p95(values: list[float]) -> float:
    """Return the 95th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * 95 // 100) - 1)]


def explain(sql: str) -> str:
    """Return EXPLAIN ANALYZE of one captured statement."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def matches(query: str | None) -> str:
    """Return how many members the search finds (capped), to show it found the member."""
    if query is None:
        return ""
    from members.models import Member
    from members.selectors import member_search

    found = member_search(queryset=Member.objects.all(), query=query)[:10_001].count()
    return "10,000+" if found > 10_000 else f"{found:,}"


def main() -> None:
    """Log in, measure every page, print the table and a plan for a slow search."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=30, help="timed requests per page")
    args = parser.parse_args()
    django_setup()
    from urllib.parse import urlencode

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.urls import NoReverseMatch, reverse

    from members.models import Member

    user_model = get_user_model()
    user = user_model.objects.filter(username=BENCH_USER).first()
    if user is None:
        user = user_model.objects.create_superuser(
            BENCH_USER, "bench@example.com", secrets.token_urlsafe(24)
        )
    client = Client()
    client.force_login(user)

    try:
        changelist = reverse("admin:members_member_changelist")
    except NoReverseMatch:
        raise SystemExit(
            "The Member admin is not registered (admin:members_member_changelist)"
        ) from None
    typical, busiest, searches = pick_subjects()
    pages = [("changelist", changelist, "")]
    pages += [(f"search: {label}", f"{changelist}?{urlencode({'q': query})}", query)
              for label, query in searches]
    for label, member in (("typical", typical), ("longest history", busiest)):
        url = reverse("admin:members_member_change", args=[member.pk])
        pages.append(
            (f"change page ({label}, {member.points_entries.count()} entries)", url, None)
        )

    print(f"Member admin at {Member.objects.count():,} members, {connection.vendor}, "
          f"{WARM_UPS} warm-ups + {args.requests} requests each")
    print(f"{'page':<52} {'status':>6} {'median':>8} {'p95':>8} {'queries':>8} {'matches':>8}")
    worst = None
    for label, url, query in pages:
        status, timings, query_counts, slowest = measure(client, url, args.requests)
        median, high = statistics.median(timings), p95(timings)
        counts = "/".join(str(count) for count in sorted(query_counts))
        flag = "" if high < GOAL_MS else "  > goal"
        print(f"{label:<52} {status:>6} {median:>6.1f}ms {high:>6.1f}ms {counts:>8} "
              f"{matches(query):>8}{flag}", flush=True)
        if status != 200:
            print(f"    {url} answered {status}")
        if label.startswith("search") and (worst is None or high > worst[0]):
            worst = (high, label, slowest)

    if worst and worst[0] >= GOAL_MS and connection.vendor == "postgresql":
        high, label, queries = worst
        statement = max(queries, key=lambda query: float(query["time"] or 0))
        print(f"\nSlowest search: {label} ({high:.1f} ms p95); its slowest statement "
              f"({float(statement['time']) * 1000:.1f} ms):\n{statement['sql']}\n")
        print(explain(statement["sql"]))


if __name__ == "__main__":
    main()
