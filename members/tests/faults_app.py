"""The Celery app of the fault tests: ``loyalty_admin/celery.py`` with the proposed changes.

A prototype of what the project's app should set (see docs/readme/hardening-data.md):
every task derives from :class:`members.broker_health.DeliveryGuardedTask`, and the
Redis visibility timeout brings a dead worker's message back. The tests shorten the
timeout to seconds and the delivery limit to 2; production keeps an hour and 3.
Workers start with ``-A members.tests.faults_app``.
"""

import os
import signal
from pathlib import Path

from celery import Celery
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty_admin.settings.test")

app = Celery("loyalty_admin", task_cls="members.broker_health:DeliveryGuardedTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.broker_transport_options = {
    "visibility_timeout": float(os.environ.get("FAULTS_VISIBILITY_TIMEOUT", "2")),
    "unacked_restore_interval": 1, "unacked_restore_throttle": 1,
}
app.conf.broker_connection_retry_on_startup = True
settings.LOYALTY_TASK_MAX_DELIVERIES = 2
app.autodiscover_tasks()


@app.task(name="faults.worker_killer")
def worker_killer(marker: str) -> None:
    """Die as a worker does when a task exhausts its memory: note the delivery, SIGKILL."""
    with Path(marker).open("a") as out:
        out.write("delivered\n")
    os.kill(os.getpid(), signal.SIGKILL)
