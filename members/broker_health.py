"""Whether background jobs can be queued now, and queuing that never breaks a page.

When the broker (Redis) is unreachable the web pages keep working: a banner says that
background jobs are delayed (the context processor below), a job asked for is kept as
queued instead of failing the request (:func:`task_submit`), and
:func:`jobs_resubmit_stranded` sends the queued jobs again once the broker is back.

The check is cached per process and bounded: a page waits at most
``BROKER_CHECK_TIMEOUT`` seconds for it, once per ``BROKER_CHECK_TTL`` seconds.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit

from celery import Task
from celery.exceptions import Reject
from django.conf import settings
from django.utils import timezone

logger = logging.getLogger(__name__)

# Seconds a page may wait for the check (connect + PING), and how long a result holds.
BROKER_CHECK_TIMEOUT = 0.08
BROKER_CHECK_TTL_UP = 15.0
BROKER_CHECK_TTL_DOWN = 5.0
# A job still queued this long after it was asked for is sent again.
STRANDED_AFTER = timedelta(minutes=10)

_lock = threading.Lock()
_state: dict = {"checked_at": 0.0, "up": True, "url": None}


def _broker_url() -> str:
    return getattr(settings, "CELERY_BROKER_URL", "") or ""


def tasks_run_in_process() -> bool:
    """Return whether tasks run in the web process itself (no broker configured)."""
    return bool(getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False)) or not _broker_url()


def _probe(url: str, timeout: float) -> bool:
    """Return whether the broker at ``url`` answers within ``timeout`` seconds."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    default_port = {"redis": 6379, "rediss": 6379, "amqp": 5672, "amqps": 5671}
    port = parts.port or default_port.get(parts.scheme, 6379)
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if parts.scheme != "redis":
                return True  # a TCP answer is all we ask of TLS or other brokers
            if parts.password:
                user = parts.username or "default"
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                sock.sendall(f"AUTH {user} {parts.password}\r\n".encode())
                if not sock.recv(64).startswith(b"+OK"):
                    return False
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def broker_reachable(*, force: bool = False) -> bool:
    """Return whether tasks can be queued now (cached; at most ~80 ms when checked).

    True without a broker: tasks then run in-process.
    """
    if tasks_run_in_process():
        return True
    url = _broker_url()
    now = time.monotonic()
    ttl = BROKER_CHECK_TTL_UP if _state["up"] else BROKER_CHECK_TTL_DOWN
    if not force and _state["url"] == url and now - _state["checked_at"] < ttl:
        return _state["up"]
    # One thread checks; the others use the last answer meanwhile.
    if not _lock.acquire(blocking=False):
        return _state["up"]
    try:
        up = _probe(url, BROKER_CHECK_TIMEOUT)
        if up != _state["up"]:
            logger.log(logging.INFO if up else logging.WARNING,
                       "Task broker %s", "reachable again" if up else "unreachable")
        _state.update(checked_at=time.monotonic(), up=up, url=url)
        return up
    finally:
        _lock.release()


def background_jobs(request) -> dict:
    """Context processor: ``background_jobs_delayed`` is true while the broker is down.

    Lazy: the check runs only on a page whose template asks for it, and only for staff.
    """

    def delayed() -> bool:
        user = getattr(request, "user", None)
        if user is None or not getattr(user, "is_staff", False):
            return False
        return not broker_reachable()

    return {"background_jobs_delayed": delayed}


def task_submit(task, *args) -> bool:
    """Queue ``task(*args)``; return False (and log) instead of raising when it cannot be.

    Use in ``transaction.on_commit`` for jobs that keep their own status (imports,
    exports): a job left queued is sent again by :func:`jobs_resubmit_stranded` when the
    broker is back. Never waits for a broker known to be down; a failed send marks the
    broker down for the next requests.
    """
    if not broker_reachable():
        logger.warning("Task %s%s not queued: the broker is unreachable", task.name, args)
        return False
    try:
        task.apply_async(args=args, retry=False)
    except Exception:  # noqa: BLE001 - any broker error: keep the job queued, say so
        logger.exception("Task %s%s could not be queued", task.name, args)
        _state.update(checked_at=time.monotonic(), up=False, url=_broker_url())
        return False
    return True


def jobs_resubmit_stranded(*, older_than: timedelta = STRANDED_AFTER) -> int:
    """Send again every import or export job that waits for a worker; return how many.

    For a periodic task (every few minutes): a job asked for while the broker was down,
    or whose message was lost, runs once the broker is back. Safe however often it runs:
    each job's task looks at the status first and takes an advisory lock, so a second
    delivery of a running job returns at once.
    """
    from members.exports import export_job_run
    from members.importing.tasks import import_job_apply_run, import_job_preview_run
    from members.models import ExportJob, ImportJob

    before = timezone.now() - older_than
    sent = 0
    for job_id in ExportJob.objects.filter(
        status=ExportJob.Status.QUEUED, created_at__lt=before
    ).values_list("id", flat=True):
        sent += task_submit(export_job_run, job_id)
    for task, status in (
        (import_job_preview_run, ImportJob.Status.UPLOADED),
        (import_job_apply_run, ImportJob.Status.IMPORTING),
    ):
        for job_id in ImportJob.objects.filter(
            status=status, created_at__lt=before
        ).values_list("id", flat=True):
            sent += task_submit(task, job_id, "")
    return sent


# ------------------------------------------------------------------ crash loops

# A message whose task killed its worker this many times is dropped, not delivered again.
MAX_DELIVERIES = 3
_DELIVERIES_KEY = "loyalty:task-deliveries:{id}:{retries}"
_DELIVERIES_TTL = 7 * 24 * 3600


def _deliveries_client(app):
    url = app.conf.broker_url or ""
    if not url.startswith(("redis://", "rediss://")):
        return None
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


class DeliveryGuardedTask(Task):
    """Base class of every task: a crash loop stops after ``LOYALTY_TASK_MAX_DELIVERIES``.

    With late acknowledgement a task whose worker dies (SIGKILL, out of memory, a
    segfault) is delivered again; one that kills every worker it reaches would come back
    forever. Each delivery is counted in the broker's Redis under the task's id (a retry
    is a new count); the count is cleared when the task returns or raises, so only
    deliveries that died with their worker add up. Past the limit the message is
    rejected without requeueing and the task is reported in the log (ERROR) with its
    name, id and arguments (ids only, never personal data).
    """

    def __call__(self, *args, **kwargs):
        request = self.request
        if not request.is_eager and request.id:
            count = self._deliveries_add(request)
            limit = int(getattr(settings, "LOYALTY_TASK_MAX_DELIVERIES", MAX_DELIVERIES))
            if count is not None and count > limit:
                logger.error(
                    "Task %s[%s] dropped: delivered %s times and its worker died each time "
                    "(limit %s). Arguments: %s %s",
                    self.name, request.id, count - 1, limit, list(args), kwargs,
                )
                raise Reject(f"worker died {count - 1} times", requeue=False)
        return super().__call__(*args, **kwargs)

    def _deliveries_key(self, request) -> str:
        return _DELIVERIES_KEY.format(id=request.id, retries=request.retries or 0)

    def _deliveries_add(self, request) -> int | None:
        try:
            client = _deliveries_client(self.app)
            if client is None:
                return None
            key = self._deliveries_key(request)
            with client.pipeline() as pipe:
                count, _expiry = pipe.incr(key).expire(key, _DELIVERIES_TTL).execute()
            return int(count)
        except Exception:  # noqa: BLE001 - counting must never stop a task
            logger.warning("Could not count deliveries of %s[%s]", self.name, request.id)
            return None

    def after_return(self, status, retval, task_id, args, kwargs, einfo):
        request = self.request
        if not request.is_eager and task_id:
            try:
                client = _deliveries_client(self.app)
                if client is not None:
                    client.delete(self._deliveries_key(request))
            except Exception:  # noqa: BLE001 - the count expires by itself anyway
                logger.debug("Could not clear the delivery count of %s", task_id)
        super().after_return(status, retval, task_id, args, kwargs, einfo)
