"""Celery tasks of imports: thin, and safe to run twice (they look at the status first).

Import them from ``members/tasks.py`` so that workers (``autodiscover_tasks``) know them.
Arguments are the job's id and the language to write messages in, never file contents.
"""

import logging

from celery import shared_task
from django.conf import settings
from django.utils import translation

from members.importing.runner import import_job_apply, import_job_fail, import_job_preview
from members.models import ImportJob

logger = logging.getLogger(__name__)


@shared_task(name="members.tasks.import_job_preview_run")
def import_job_preview_run(job_id: int, language: str = "") -> str:
    """Check an uploaded file and store the preview; return the job's status.

    Only a job that is uploaded (or was being checked by a worker that died) is checked.
    """
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is None:
        return "missing"
    if job.status not in (ImportJob.Status.UPLOADED, ImportJob.Status.PREVIEWING):
        return job.status
    with translation.override(language or settings.LANGUAGE_CODE):
        try:
            import_job_preview(job)
        except Exception:
            logger.exception("Import job %s: the preview failed", job_id)
            import_job_fail(job)
    return job.status


@shared_task(name="members.tasks.import_job_apply_run")
def import_job_apply_run(job_id: int, language: str = "") -> str:
    """Import a confirmed job's file; return the job's status.

    Only a job marked ``importing`` (confirmed, or left so by a worker that died) runs;
    a second delivery while the first runs returns at once (advisory lock), and one
    after it ended finds the job done and changes nothing.
    """
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is None:
        return "missing"
    if job.status != ImportJob.Status.IMPORTING:
        return job.status
    with translation.override(language or settings.LANGUAGE_CODE):
        try:
            import_job_apply(job)
        except Exception:
            logger.exception("Import job %s: the import failed", job_id)
            import_job_fail(job)
    return job.status
