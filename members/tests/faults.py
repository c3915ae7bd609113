"""What the fault tests share: the ``faults`` marker, restarting PostgreSQL mid-statement,
and real Celery workers on the test Redis.

The servers are the ones ``bin/test.sh`` started for this run (``bin/services.sh``): the
tests may restart them without disturbing anyone else.
"""

from __future__ import annotations

import contextlib
import glob
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery import Celery
from django.db import connection, connections

ROOT = Path(__file__).resolve().parents[2]

# --strict-markers: the marker must be known before a module uses it. pyproject.toml's
# ``markers`` should list it; until then the test modules register it here.
_FAULTS_DOC = "faults: restarts PostgreSQL, kills workers, cuts Redis (bin/test.sh -m faults)"


def faults_marker() -> pytest.MarkDecorator:
    config = getattr(pytest.mark, "_config", None)
    if config is not None and "faults" not in " ".join(config.getini("markers")):
        config.addinivalue_line("markers", _FAULTS_DOC)
    return pytest.mark.faults


# ------------------------------------------------------------------ PostgreSQL


def pg_data_directory() -> str | None:
    """Return the test server's data directory, or None when it cannot be restarted here."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('data_directory')")
        datadir = cursor.fetchone()[0]
    return datadir if os.path.isdir(datadir) else None


def _pg_ctl() -> str:
    pgbin = os.environ.get("PGBIN") or sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
    return os.path.join(pgbin, "pg_ctl")


def pg_restart(datadir: str) -> None:
    """Restart the server now (fast mode: every session is cut, in-flight work rolled back)."""
    command = [_pg_ctl(), "-D", datadir, "restart", "-m", "fast", "-w", "-t", "60",
               "-l", os.path.join(os.path.dirname(datadir), "server.log")]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]  # initdb's owner
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL,  # noqa: S603
                   stderr=subprocess.DEVNULL, timeout=90)


@pytest.fixture
def pg_datadir(db):
    datadir = pg_data_directory()
    if datadir is None:
        pytest.skip("needs the local PostgreSQL server that bin/test.sh starts")
    yield datadir
    # Whatever the test left, the next one (and the flush after this one) reconnects.
    connections.close_all()


@contextlib.contextmanager
def pg_restarted_at(datadir: str, matches: Callable[[str], bool], nth: int = 1) -> Iterator[list]:
    """Restart PostgreSQL just before the ``nth`` statement for which ``matches(sql)``.

    The statement then runs on a dead connection and fails, as a query in flight during
    a restart does. Yields a list that holds the statement once it happened.
    """
    seen = {"n": 0}
    fired: list[str] = []

    def wrapper(execute, sql, params, many, context):
        if not fired and matches(sql):
            seen["n"] += 1
            if seen["n"] == nth:
                fired.append(sql)
                pg_restart(datadir)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield fired


def inserts_into(table: str) -> Callable[[str], bool]:
    """Match a statement that inserts into ``table`` (also from a ``WITH ...`` query), or
    takes the ids of rows about to be copied into it (``members.postgres.ids_reserve``:
    COPY itself passes no execute wrapper)."""
    needles = (f'INSERT INTO "{table.upper()}"', f"INSERT INTO {table.upper()} ",
               f"PG_GET_SERIAL_SEQUENCE('{table.upper()}'")
    return lambda sql: any(needle in sql.upper() for needle in needles)


# ------------------------------------------------------------------ Celery workers


def worker_env(settings, **extra: str) -> dict[str, str]:
    """Environment of a worker process on this test's database and the test Redis."""
    redis_url = os.environ["REDIS_URL"]  # bin/test.sh starts Redis and sets it
    database_url = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    return {
        **os.environ,
        "DATABASE_URL": f"{database_url}/{connection.settings_dict['NAME']}",
        "CELERY_BROKER_URL": redis_url, "CELERY_RESULT_BACKEND": redis_url,
        "DJANGO_SETTINGS_MODULE": "loyalty_admin.settings.test",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        **extra,
    }


def worker_start(env: dict[str, str], *, app: str = "loyalty_admin", queue: str = "",
                 log: Path | None = None) -> subprocess.Popen:
    """Start one solo worker (as in production, without gossip, mingle or heartbeats)."""
    command = [sys.executable, "-m", "celery", "-A", app, "worker", "--pool=solo",
               "-I", "members.importing.tasks,rewards.tasks", "--without-gossip",
               "--without-mingle", "--without-heartbeat", "-l", "warning"]
    if queue:
        command += ["-Q", queue]
    output = open(log, "ab") if log else None  # noqa: SIM115 - closed with the process
    return subprocess.Popen(  # noqa: S603 - our own worker, fixed arguments
        command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT if log else None,
    )


def worker_stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


# ------------------------------------------------------------------ a test's own queue


@pytest.fixture
def broker(settings, tmp_path):
    """A Celery client on the test Redis, a queue of this test's own, a worker environment."""
    settings.MEDIA_ROOT = tmp_path / "media"
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        pytest.skip("needs the Redis that bin/test.sh starts")
    # Not the current app: the project's tasks must keep resolving to the project's app.
    client = Celery(broker=redis_url, backend=redis_url, set_as_current=False)
    client.conf.update(task_serializer="json", accept_content=["json"])
    queue = f"faults-{uuid.uuid4().hex[:8]}"
    yield client, queue, worker_env(settings)
    import redis

    connection = redis.Redis.from_url(redis_url)
    connection.delete(queue)


def wait_for(condition, *, timeout: float, message: str, every: float = 0.02):
    """Poll ``condition`` until it holds; fail with ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(every)
