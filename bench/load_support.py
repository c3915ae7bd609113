"""Load: 50 support users on the app served by Gunicorn, then the ledger checked.

Each simulated user logs in through the login form, then for ``--seconds`` repeats what
the support desk does all day, in proportions of a real shift: search members (by phone
in any format, card number, e-mail or last name), open a member page, and adjust points
(open the form, post it with its CSRF token and one-time key, follow the redirect).
Every request is timed. At the end it prints requests per second, median and 95th
percentile latency, and errors (any status other than the expected one, a timeout or
a refused connection), per kind and overall; then it checks, in the database, that
the ledger invariant holds (``members.selectors.ledger_mismatches()`` is empty) and
that every adjustment the users made is in the ledger exactly once (by its form key).

It needs PostgreSQL (``DATABASE_URL``) and starts Gunicorn itself on a free loopback
port; the database is migrated and seeded with ``--members`` members by
``demo_seed --if-empty`` first. The whole run is bounded: setup, ``--seconds`` of load,
a 30 s drain at most, the checks.

    source bin/services.sh && pg_start durable
    DJANGO_SETTINGS_MODULE=loyalty_admin.settings.local DEBUG=0 \\
        .venv/bin/python bench/load_support.py --members 100000 --users 50 --seconds 60

Gunicorn: ``--workers`` processes of ``--threads`` threads (gthread). On 2 cores shared
with PostgreSQL, 2 workers x 8 threads (the default) keeps both cores busy while
requests wait on the database, without more processes than cores to switch between.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "load-support-2026-pw"  # noqa: S105 - throwaway users on a throwaway database
GOAL_P95_MS = 500.0
REQUEST_TIMEOUT = 30.0
LOGIN_STAGGER = 0.3  # seconds between two users' logins
_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_KEY_INPUT = re.compile(r'name="idempotency_key" value="([^"]+)"')
# What a shift looks like: mostly finding people and reading their story.
ACTIONS = (("search", 45), ("member_page", 35), ("adjust", 20))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def django_setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty_admin.settings.local")
    os.environ["DEBUG"] = "0"
    import django

    django.setup()


def manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, check=True)


# ------------------------------------------------------------------ setup


def users_prepare(count: int) -> list[str]:
    """Create ``count`` Support users (idempotent) and return their usernames."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from members.roles import SUPPORT

    group = Group.objects.get(name=SUPPORT)
    names = []
    for index in range(count):
        name = f"load-support-{index:02d}"
        user, created = get_user_model().objects.get_or_create(
            username=name, defaults={"is_staff": True}
        )
        if created:
            user.set_password(PASSWORD)
            user.save()
            user.groups.add(group)
        names.append(name)
    return names


def subjects_pick(count: int = 2000) -> list[dict]:
    """Return active members to search for and adjust: id, phone, card, e-mail, last name."""
    from members.models import Member

    ids = list(
        Member.objects.filter(status=Member.Status.ACTIVE).order_by("?")
        .values_list("id", flat=True)[:count]
    )
    return list(Member.objects.filter(id__in=ids).values(
        "id", "phone", "card_number", "email", "last_name"
    ))


def search_terms(member: dict) -> list[str]:
    """Return the ways support would type this member into the search box."""
    terms = [member["card_number"]]
    phone = member["phone"]
    if len(phone) == 11:
        national = phone[1:]
        terms += [f"+7 ({national[:3]}) {national[3:6]}-{national[6:8]}-{national[8:]}",
                  f"8 {national[:3]} {national[3:6]} {national[6:8]} {national[8:]}"]
    if member["email"]:
        terms.append(member["email"].upper())
    if member["last_name"]:
        terms.append(member["last_name"][:5])
    return terms


# ------------------------------------------------------------------ gunicorn


def gunicorn_start(port: int, workers: int, threads: int) -> subprocess.Popen:
    env = {**os.environ, "DEBUG": "0", "ALLOWED_HOSTS": "127.0.0.1,localhost"}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "loyalty_admin.wsgi",
         "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads",
         str(threads), "--worker-class", "gthread", "--timeout", "60",
         "--log-level", "warning", "--backlog", "256",
         # As behind a load balancer: idle keep-alive connections are kept a while.
         "--keep-alive", "30"],
        cwd=ROOT, env=env, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health/")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("Gunicorn did not answer within 60 s")


def gunicorn_stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


# ------------------------------------------------------------------ one support user


class Session:
    """One browser: a keep-alive connection, the cookies, and the timings it took."""

    def __init__(self, port: int, stats: Stats):
        self.port = port
        self.cookies: dict[str, str] = {}
        self.stats = stats
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)

    def request(self, kind: str, method: str, path: str, *, data: dict | None = None,
                expect: int = 200) -> str | None:
        headers = {"Host": "127.0.0.1", "Accept-Language": "en"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if data is not None:
            body = urlencode(data)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Referer"] = f"http://127.0.0.1:{self.port}{path}"
        started = time.perf_counter()
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                text = response.read().decode("utf-8", "replace")
                break
            except (OSError, http.client.HTTPException) as error:
                self.connection.close()
                self.connection = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=REQUEST_TIMEOUT
                )
                # A keep-alive connection the server closed meanwhile: send it again once,
                # as a browser does (a repeated adjustment is safe: its one-time key).
                stale = isinstance(error, (http.client.RemoteDisconnected,
                                           ConnectionResetError, BrokenPipeError))
                if attempt == 1 and stale:
                    continue
                self.stats.record(kind, time.perf_counter() - started, type(error).__name__)
                return None
        elapsed = time.perf_counter() - started
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        error = None if response.status == expect else f"HTTP {response.status}"
        self.stats.record(kind, elapsed, error)
        return text if error is None else None

    def login(self, username: str) -> bool:
        page = self.request("login_page", "GET", "/admin/login/?next=/admin/")
        token = _CSRF_INPUT.search(page or "")
        if not token:
            return False
        done = self.request("login", "POST", "/admin/login/?next=/admin/", data={
            "csrfmiddlewaretoken": token.group(1), "username": username,
            "password": PASSWORD, "next": "/admin/",
        }, expect=302)
        return done is not None


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.timings: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)
        self.adjustments: list[tuple[str, int, int]] = []  # (form key, member id, points)

    def record(self, kind: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.timings[kind].append(seconds)
            if error:
                self.errors[kind].append(error)


def support_user(username: str, port: int, subjects: list[dict], window: dict,
                 start: threading.Barrier, stats: Stats, seed: int) -> None:
    rng = random.Random(seed)
    session = Session(port, stats)
    time.sleep(seed * LOGIN_STAGGER)  # people arrive over a few seconds, not all at once
    logged_in = session.login(username)
    start.wait()  # everyone logged in: the timed window starts for all at once
    if not logged_in:
        return
    stop_at = window["stop_at"]
    think = window["think"]
    kinds = [kind for kind, _weight in ACTIONS]
    weights = [weight for _kind, weight in ACTIONS]
    while time.monotonic() < stop_at:
        if think:
            time.sleep(rng.uniform(0.5 * think, 1.5 * think))  # reading the page
        member = rng.choice(subjects)
        kind = rng.choices(kinds, weights)[0]
        if kind == "search":
            term = rng.choice(search_terms(member))
            session.request("search", "GET", "/admin/members/member/?" + urlencode({"q": term}))
        elif kind == "member_page":
            session.request("member_page", "GET", f"/admin/members/member/{member['id']}/change/")
        else:
            url = f"/admin/members/member/{member['id']}/adjust/"
            page = session.request("adjust_form", "GET", url)
            token, key = _CSRF_INPUT.search(page or ""), _KEY_INPUT.search(page or "")
            if not (token and key):
                continue
            points = rng.randint(1, 20)
            posted = session.request("adjust_post", "POST", url, data={
                "csrfmiddlewaretoken": token.group(1), "idempotency_key": key.group(1),
                "amount": str(points), "reason": f"Load test goodwill {uuid.uuid4().hex[:6]}",
            }, expect=302)
            if posted is not None:
                with stats.lock:
                    stats.adjustments.append((key.group(1), member["id"], points))


# ------------------------------------------------------------------ report


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


LOGIN_KINDS = ("login_page", "login")


def report(stats: Stats, seconds: float) -> tuple[int, float]:
    """Print the figures; the totals are those of the timed window (logins apart)."""
    everything = [t for kind, ts in stats.timings.items() if kind not in LOGIN_KINDS
                  for t in ts]
    errors = sum(len(e) for e in stats.errors.values())
    print(f"{'request':<14}{'count':>8}{'median ms':>11}{'p95 ms':>9}{'max ms':>9}{'errors':>8}")
    for kind in sorted(stats.timings):
        ts = stats.timings[kind]
        print(f"{kind:<14}{len(ts):>8}{statistics.median(ts) * 1000:>11.0f}"
              f"{percentile(ts, 0.95) * 1000:>9.0f}{max(ts) * 1000:>9.0f}"
              f"{len(stats.errors[kind]):>8}")
    p95 = percentile(everything, 0.95) * 1000
    print(f"{'window':<14}{len(everything):>8}{statistics.median(everything) * 1000:>11.0f}"
          f"{p95:>9.0f}{max(everything) * 1000:>9.0f}{errors:>8}")
    print(f"Throughput: {len(everything) / seconds:.1f} requests/s over {seconds:.1f} s")
    if errors:
        kinds = {kind: sorted(set(e)) for kind, e in stats.errors.items() if e}
        print(f"Errors by kind: {kinds}")
    return errors, p95


def ledger_check(stats: Stats) -> bool:
    """Check the invariant and that each adjustment made is in the ledger exactly once."""
    from django.db.models import Count

    from members.models import PointsAdjustment, PointsEntry
    from members.selectors import ledger_mismatches

    mismatches = list(ledger_mismatches())
    keys = [f"form:{key}" for key, _member, _points in stats.adjustments]
    adjustments = {
        row["idempotency_key"]: row
        for row in PointsAdjustment.objects.filter(idempotency_key__in=keys).values(
            "id", "idempotency_key", "member_id", "amount", "status"
        )
    }
    entry_keys = [f"adjustment:{row['id']}" for row in adjustments.values()]
    entries = dict(
        PointsEntry.objects.filter(idempotency_key__in=entry_keys)
        .values("idempotency_key").annotate(n=Count("id")).values_list("idempotency_key", "n")
    )
    wrong = []
    for key, member_id, points in stats.adjustments:
        row = adjustments.get(f"form:{key}")
        if row is None or (row["member_id"], row["amount"], row["status"]) != (
            member_id, points, "applied"
        ) or entries.get(f"adjustment:{row['id']}") != 1:
            wrong.append(key)
    print(f"Ledger invariant: {'holds' if not mismatches else f'{len(mismatches)} mismatches'}"
          f" (cached balance = ledger sum for every member)")
    print(f"Adjustments made: {len(stats.adjustments)}; each in the ledger exactly once: "
          f"{'yes' if not wrong else f'no, {len(wrong)} wrong'}")
    return not mismatches and not wrong


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--think", type=float, default=0.0,
                        help="mean seconds a user reads a page before the next request "
                             "(uniform over 0.5-1.5 times this); 0: none")
    options = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL database (bin/services.sh pg_start).")

    os.environ["DEBUG"] = "0"
    manage("migrate", "--noinput", "-v", "0")
    manage("collectstatic", "--noinput", "-v", "0")
    started = time.monotonic()
    manage("demo_seed", "--members", str(options.members), "--if-empty")
    print(f"Seeded (or found) the database in {time.monotonic() - started:.0f} s")
    django_setup()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    usernames = users_prepare(options.users)
    subjects = subjects_pick()
    from members.models import Member

    print(f"{Member.objects.count():,} members; {options.users} support users; "
          f"Gunicorn {options.workers} workers x {options.threads} threads; "
          f"think time {options.think:g} s; "
          f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
    connection.close()

    port = free_port()
    server = gunicorn_start(port, options.workers, options.threads)
    stats = Stats()
    try:
        window: dict = {"think": options.think}
        began: list[float] = []

        def window_open() -> None:
            began.append(time.monotonic())
            window["stop_at"] = began[0] + options.seconds

        # Logins first (each hashes a password: about a CPU-second apiece here), then the
        # timed window, for every user at once.
        start = threading.Barrier(len(usernames), action=window_open, timeout=300)
        logins_began = time.monotonic()
        threads = [
            threading.Thread(target=support_user, daemon=True,
                             args=(name, port, subjects, window, start, stats, index))
            for index, name in enumerate(usernames)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300 + options.seconds + REQUEST_TIMEOUT)
        elapsed = time.monotonic() - began[0]
        print(f"{len(usernames)} logins took {began[0] - logins_began:.1f} s")
    finally:
        gunicorn_stop(server)
    errors, p95 = report(stats, elapsed)
    ledger_ok = ledger_check(stats)
    goal = errors == 0 and p95 < GOAL_P95_MS and ledger_ok
    print(f"Goal (no errors, p95 < {GOAL_P95_MS:.0f} ms, ledger exact): "
          f"{'met' if goal else 'NOT met'}")
    return 0 if goal else 1


if __name__ == "__main__":
    sys.exit(main())
