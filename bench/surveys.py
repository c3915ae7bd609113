"""Benchmark: survey numbers over 1,000,000 answers, and the public answer page.

1. Loads ``--answers`` answers (default 1,000,000) over the last 365 days, spread over
   two NPS surveys and one CSAT survey, members, tiers, RFM segments and stores, and as
   many invitations, with PostgreSQL COPY (SQLite: bulk inserts; use a smaller number).
2. Builds the daily roll-up from scratch (what the first nightly job does) and times it.
3. Times what the results page and the dashboards ask for a year: NPS summary, the
   four breakdowns (tier, RFM segment, store, touchpoint) and the weekly trend; median
   and max of 5 runs after one warm-up (goal: under 1 s together, from the roll-ups),
   and once for comparison the same NPS summary read live from the answers.
4. Public answer page through Django's test client (the whole request: middleware,
   signature check, one invitation lookup, template): GET requests per second, and
   answers posted per second (each stores an answer and marks its invitation).

    DATABASE_URL=postgres://... python bench/surveys.py [--answers 1000000] [--requests 300]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_S = 1.0


def django_setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty_admin.settings.local")
    os.environ["DEBUG"] = "0"
    os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    import django

    django.setup()


def surveys_make():
    from django.utils import timezone

    from surveys.models import Survey

    start = timezone.now() - timedelta(days=400)
    made = []
    for code, kind, touchpoint in (("bench-nps-purchase", "nps", "after_purchase"),
                                   ("bench-nps-support", "nps", "after_support"),
                                   ("bench-csat-delivery", "csat", "delivery")):
        survey, _created = Survey.objects.get_or_create(code=code, defaults={
            "name": code, "kind": kind, "touchpoint": touchpoint, "starts_at": start,
            "default_language": "en"})
        made.append(survey)
    return made


def answers_load(count: int, surveys) -> float:
    """Insert ``count`` answers and invitations; return the seconds it took."""
    from django.db import connection
    from django.utils import timezone

    from members.models import Member, Store
    from surveys.models import Invitation, Response

    member_ids = list(Member.objects.values_list("id", flat=True)[:200_000])
    if not member_ids:
        sys.exit("No members: run manage.py demo_seed first.")
    store_ids = list(Store.objects.values_list("id", flat=True)) or [None]
    try:
        from rewards.models import Tier

        tier_ids = list(Tier.objects.values_list("id", flat=True)) or [None]
    except ImportError:
        tier_ids = [None]
    segments = ["champions", "loyal", "new", "at_risk", "lost", "hibernating", ""]
    rng = random.Random(5)
    now = timezone.now()
    started = time.perf_counter()
    response_columns = ["survey_id", "member_id", "source", "score", "comment", "answered_at",
                        "language", "touchpoint", "store_id", "tier_id", "rfm_segment",
                        "sentiment_auto", "sentiment_override", "themes"]
    invitation_columns = ["survey_id", "member_id", "link_key", "language", "channel",
                          "created_at", "expires_at"]
    chunk = 100_000
    for offset in range(0, count, chunk):
        answers, invitations = [], []
        for i in range(offset, min(count, offset + chunk)):
            survey = surveys[i % len(surveys)]
            at = now - timedelta(seconds=rng.randint(0, 365 * 86400))
            score = rng.choice([10, 10, 9, 9, 8, 7, 6, 5, 3, 0]) if survey.kind == "nps" \
                else rng.randint(1, 5)
            member_id = member_ids[i % len(member_ids)]
            answers.append((survey.pk, member_id, "link", score, "", at, "en",
                            survey.touchpoint, rng.choice(store_ids), rng.choice(tier_ids),
                            rng.choice(segments), "", "", ""))
            invitations.append((survey.pk, member_id, f"b{i:031d}", "en", "email",
                                at - timedelta(hours=5), at + timedelta(days=14)))
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                # Invitations are unique per (survey, member): the bench gives each
                # member one invitation per survey at most, the rest answers only.
                for table, columns, rows in (
                    (Response._meta.db_table, response_columns, answers),
                    ("bench_invitations", invitation_columns, invitations),
                ):
                    if table == "bench_invitations":
                        cursor.execute(
                            "CREATE TEMP TABLE IF NOT EXISTS bench_invitations AS SELECT "
                            f"{', '.join(columns)} FROM {Invitation._meta.db_table} "
                            "WITH NO DATA")
                    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                cursor.execute(
                    f"INSERT INTO {Invitation._meta.db_table} ({', '.join(invitation_columns)}) "
                    f"SELECT {', '.join(invitation_columns)} FROM bench_invitations "
                    "ON CONFLICT DO NOTHING")
                cursor.execute("TRUNCATE bench_invitations")
        else:
            Response.objects.bulk_create(
                [Response(**dict(zip(response_columns, row, strict=True))) for row in answers],
                batch_size=5000)
            Invitation.objects.bulk_create(
                [Invitation(**dict(zip(invitation_columns, row, strict=True)))
                 for row in invitations], batch_size=5000, ignore_conflicts=True)
        print(f"  {min(count, offset + chunk):,} answers loaded", flush=True)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Response._meta.db_table}")
            cursor.execute(f"ANALYZE {Invitation._meta.db_table}")
    return time.perf_counter() - started


def reading_time(use_rollup: bool = True) -> dict[str, float]:
    from django.utils import timezone

    from surveys import selectors

    end = timezone.localdate()
    start = end - timedelta(days=364)
    timings = {}
    started = time.perf_counter()
    summary = selectors.nps_summary(start=start, end=end)
    timings["nps_summary"] = time.perf_counter() - started
    for dimension in ("tier", "rfm", "store", "touchpoint"):
        started = time.perf_counter()
        selectors.breakdown(start=start, end=end, dimension=dimension)
        timings[f"breakdown {dimension}"] = time.perf_counter() - started
    started = time.perf_counter()
    selectors.nps_trend(start=start, end=end, grain="week")
    timings["weekly trend"] = time.perf_counter() - started
    started = time.perf_counter()
    selectors.csat_summary(start=start, end=end)
    timings["csat_summary"] = time.perf_counter() - started
    timings["_responses"] = summary.responses
    timings["_nps"] = summary.nps
    return timings


def public_page(requests: int) -> tuple[float, float]:
    """Return (GET requests per second, answers posted per second)."""
    from django.test import Client

    from members.models import Member
    from surveys import services
    from surveys.models import Invitation, Survey

    survey, _created = Survey.objects.get_or_create(code="bench-public", defaults={
        "name": "bench public", "kind": "nps", "default_language": "en"})
    members = list(Member.objects.exclude(survey_invitations__survey=survey)
                   .values_list("id", flat=True)[:requests])
    batch = services.invitations_create(survey_id=survey.pk, member_ids=members, send=False)
    tokens = [services.invitation_token(invitation)
              for invitation in Invitation.objects.filter(pk__in=batch.created_ids)]
    client = Client()
    for token in tokens[:5]:
        client.get(f"/survey/a/{token}/")
    started = time.perf_counter()
    for token in tokens:
        assert client.get(f"/survey/a/{token}/").status_code == 200
    get_rate = len(tokens) / (time.perf_counter() - started)
    client = Client(enforce_csrf_checks=False)
    started = time.perf_counter()
    for token in tokens:
        status = client.post(f"/survey/a/{token}/", {"score": "9", "comment": "Great"})
        assert status.status_code == 302, status.status_code
    post_rate = len(tokens) / (time.perf_counter() - started)
    return get_rate, post_rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--skip-load", action="store_true")
    args = parser.parse_args()
    django_setup()
    from django.db import connection

    from surveys import services
    from surveys.models import Response, ResponseDaily, RollupState

    print(f"== Surveys on {connection.vendor}")
    surveys = surveys_make()
    if not args.skip_load and Response.objects.count() < args.answers:
        seconds = answers_load(args.answers, surveys)
        print(f"Loaded {args.answers:,} answers in {seconds:.1f} s")
    RollupState.objects.filter(pk=1).delete()
    ResponseDaily.objects.all().delete()
    started = time.perf_counter()
    rows = services.responses_rollup_nightly()
    print(f"Roll-up built from scratch: {rows:,} rows in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    services.responses_rollup_nightly()
    print(f"Nightly refresh of the last 3 days: {time.perf_counter() - started:.2f} s")

    reading_time()  # warm-up
    runs = [reading_time() for _ in range(5)]
    print(f"A year of {runs[0]['_responses']:,} NPS answers, NPS {runs[0]['_nps']:.1f}:")
    totals = []
    for name in runs[0]:
        if name.startswith("_"):
            continue
        values = [run[name] * 1000 for run in runs]
        print(f"  {name:22s} median {statistics.median(values):7.1f} ms, "
              f"max {max(values):7.1f} ms")
    totals = [sum(v for k, v in run.items() if not k.startswith("_")) for run in runs]
    verdict = "OK" if max(totals) < GOAL_S else "over the goal"
    print(f"  {'all together':22s} median {statistics.median(totals) * 1000:7.1f} ms, "
          f"max {max(totals) * 1000:7.1f} ms (goal < {GOAL_S * 1000:.0f} ms: {verdict})")
    through = RollupState.objects.get(pk=1).complete_through
    RollupState.objects.filter(pk=1).update(complete_through=None)
    started = time.perf_counter()
    from django.utils import timezone

    from surveys import selectors

    selectors.nps_summary(start=timezone.localdate() - timedelta(days=364),
                          end=timezone.localdate())
    print(f"  for comparison, NPS summary read live from the answers: "
          f"{(time.perf_counter() - started) * 1000:.0f} ms")
    RollupState.objects.filter(pk=1).update(complete_through=through)

    get_rate, post_rate = public_page(args.requests)
    print(f"Public answer page, one process: {get_rate:.0f} GET requests/s, "
          f"{post_rate:.0f} answers posted/s")


if __name__ == "__main__":
    main()
