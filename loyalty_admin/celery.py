"""The Celery application; tasks are discovered in each app's ``tasks.py``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty_admin.settings.local")

# Every task counts its deliveries: one that keeps killing its worker is dropped, not
# delivered forever (members.broker_health.DeliveryGuardedTask).
app = Celery("loyalty_admin", task_cls="members.broker_health:DeliveryGuardedTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
