"""Redis unreachable: pages keep working and say jobs are delayed; jobs run when it returns.

A private Redis on a free port is stopped and started again by the tests; the project's
Celery app is pointed at it (not eager) for the length of a test.
"""

import os
import shutil
import socket
import subprocess
import time
from datetime import timedelta

import pytest
import redis
from celery import _state as celery_state
from django.template import RequestContext, Template
from django.test import RequestFactory
from django.urls import reverse
from kombu import pools as kombu_pools

from loyalty_admin.celery import app as celery_app
from members import broker_health
from members.broker_health import broker_reachable, jobs_resubmit_stranded, task_submit
from members.exports import export_job_run
from members.models import ExportJob, Member
from members.tests.faults import faults_marker, worker_env, worker_start, worker_stop

pytestmark = [faults_marker(), pytest.mark.django_db]

CONTEXT_PROCESSOR = "members.broker_health.background_jobs"
# The banner as templates/admin/base_site.html should show it (docs/readme/hardening-data.md).
BANNER = (
    "{% load i18n %}{% if background_jobs_delayed %}<p class=\"background-jobs-delayed\">"
    "{% translate 'Background jobs are delayed: the task queue cannot be reached.' %}"
    "</p>{% endif %}"
)


def banner(request) -> str:
    # Compiled here, after the settings fixture: a template keeps the engine it was made by.
    return Template(BANNER).render(RequestContext(request, {}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of the test's own that can be stopped and started on one port."""

    def __init__(self, directory):
        self.port = free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        subprocess.run(  # noqa: S603 - fixed arguments, the binary found on PATH
            [shutil.which("redis-server"), "--bind", "127.0.0.1", "--port", str(self.port),
             "--save", "", "--appendonly", "no", "--dir", str(self.directory), "--daemonize", "yes",
             "--pidfile", str(self.directory / "redis.pid"),
             "--logfile", str(self.directory / "redis.log")], check=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url, socket_timeout=0.5).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        pid_file = self.directory / "redis.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            os.kill(pid, 15)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.05)


@pytest.fixture
def private_redis(tmp_path, settings):
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    server = PrivateRedis(tmp_path)
    server.start()
    saved = (celery_app.conf.broker_url, celery_app.conf.task_always_eager)
    # A test elsewhere may have made its own client app current (Celery() does by default);
    # the project's shared tasks must resolve to the project's app here.
    previous = celery_state.get_current_app()
    celery_app.set_current()
    settings.CELERY_BROKER_URL = server.url
    settings.CELERY_TASK_ALWAYS_EAGER = False
    celery_app.conf.broker_url = server.url
    celery_app.conf.task_always_eager = False
    _celery_pools_reset()
    broker_health._state.update(checked_at=0.0, up=True, url=None)
    yield server
    server.stop()
    celery_app.conf.broker_url, celery_app.conf.task_always_eager = saved
    _celery_pools_reset()
    previous.set_current()
    broker_health._state.update(checked_at=0.0, up=True, url=None)


def _celery_pools_reset() -> None:
    # Connections made to the private Redis must not outlive it.
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
    celery_app._pool = None
    celery_app.__dict__.get("amqp") and setattr(celery_app.amqp, "_producer_pool", None)
    # kombu keeps its own registry of producer pools by connection: a closed one left there
    # would be handed to the next test that sends a task ("Acquire on closed pool").
    kombu_pools.reset()


@pytest.fixture
def with_banner_context(settings):
    templates = [dict(t, OPTIONS=dict(t["OPTIONS"])) for t in settings.TEMPLATES]
    processors = templates[0]["OPTIONS"]["context_processors"]
    if CONTEXT_PROCESSOR not in processors:
        templates[0]["OPTIONS"]["context_processors"] = [*processors, CONTEXT_PROCESSOR]
    settings.TEMPLATES = templates


# ------------------------------------------------------------------ the check


def test_check_is_bounded_when_redis_hangs_without_answering():
    """A server that accepts the connection and never answers (a hung Redis)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        started = time.perf_counter()
        assert broker_health._probe(f"redis://127.0.0.1:{port}/0", 0.08) is False
        assert time.perf_counter() - started < 0.15
    finally:
        listener.close()


def test_check_answers_at_once_from_its_cache(private_redis):
    assert broker_reachable(force=True) is True
    private_redis.stop()
    assert broker_reachable() is True, "cached for a few seconds: no check on every page"
    started = time.perf_counter()
    assert broker_reachable(force=True) is False
    assert time.perf_counter() - started < 0.1
    started = time.perf_counter()
    for _ in range(100):
        assert broker_reachable() is False
    assert time.perf_counter() - started < 0.05


def test_without_a_broker_tasks_run_in_process_and_nothing_is_delayed(settings):
    settings.CELERY_BROKER_URL = ""
    assert broker_reachable(force=True) is True


# ------------------------------------------------------------------ pages


def test_pages_keep_working_and_say_background_jobs_are_delayed(
    private_redis, with_banner_context, admin_client, admin_user
):
    Member.objects.create(card_number="4100001", first_name="Anna")
    private_redis.stop()
    broker_reachable(force=True)
    for url in (reverse("admin:index"), reverse("admin:members_member_changelist"),
                reverse("admin:members_member_changelist") + "?q=Anna"):
        started = time.perf_counter()
        response = admin_client.get(url)
        assert response.status_code == 200
        assert time.perf_counter() - started < 5
        assert response.context["background_jobs_delayed"]() is True
    request = RequestFactory().get("/admin/")
    request.user = admin_user
    assert "Background jobs are delayed" in banner(request)

    private_redis.start()
    broker_reachable(force=True)
    assert "Background jobs are delayed" not in banner(request)


def test_the_banner_is_not_shown_to_visitors_who_are_not_staff(private_redis, rf):
    from django.contrib.auth.models import AnonymousUser

    private_redis.stop()
    request = rf.get("/admin/login/")
    request.user = AnonymousUser()
    assert broker_health.background_jobs(request)["background_jobs_delayed"]() is False


# ------------------------------------------------------------------ jobs


@pytest.mark.django_db(transaction=True)
def test_a_job_queued_while_redis_is_down_runs_on_a_worker_once_it_is_back(
    private_redis, admin_user, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    Member.objects.bulk_create(Member(card_number=f"42{i:05d}", first_name="Q")
                               for i in range(30))
    job = ExportJob.objects.create(
        user=admin_user, source="members.member", file_format=ExportJob.Format.CSV,
        status=ExportJob.Status.QUEUED,
    )
    private_redis.stop()
    started = time.perf_counter()
    assert task_submit(export_job_run, job.pk) is False  # no exception: the job waits
    assert time.perf_counter() - started < 0.2
    job.refresh_from_db()
    assert job.status == ExportJob.Status.QUEUED

    private_redis.start()
    broker_reachable(force=True)
    assert jobs_resubmit_stranded(older_than=timedelta(0)) == 1
    env = worker_env(settings, CELERY_BROKER_URL=private_redis.url,
                     CELERY_RESULT_BACKEND=private_redis.url)
    worker = worker_start(env)
    try:
        deadline = time.monotonic() + 90
        while ExportJob.objects.get(pk=job.pk).status != ExportJob.Status.DONE:
            assert time.monotonic() < deadline, "the job never ran"
            time.sleep(0.2)
    finally:
        worker_stop(worker)
    job.refresh_from_db()
    assert job.rows_done == 30 and job.file


@pytest.mark.django_db(transaction=True)
def test_a_large_export_asked_for_while_redis_is_down_is_not_a_server_error(
    private_redis, admin_client, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.LOYALTY_EXPORT_STREAM_MAX_ROWS = 2
    Member.objects.bulk_create(Member(card_number=f"43{i:05d}", first_name="Q")
                               for i in range(5))
    private_redis.stop()
    admin_client.raise_request_exception = False
    response = admin_client.get(reverse("admin:members_member_export"), {"format": "csv"})
    assert response.status_code == 302
    assert ExportJob.objects.get().status == ExportJob.Status.QUEUED
