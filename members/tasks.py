"""Celery tasks of the members app: thin wrappers around selectors and services."""

import logging

from celery import shared_task

from members.selectors import ledger_mismatches

logger = logging.getLogger(__name__)


@shared_task(name="members.tasks.ledger_verify")
def ledger_verify() -> int:
    """Log every member whose balance differs from the ledger; return how many (read-only)."""
    count = 0
    for row in ledger_mismatches().iterator(chunk_size=1000):
        count += 1
        logger.error(
            "Ledger mismatch: member %s balance %s, ledger sum %s",
            row["id"], row["points_balance"], row["ledger_sum"],
        )
    return count


# Tasks defined beside the code they run; importing them here lets workers find them.
from members.exports import export_job_run  # noqa: E402, F401
from members.importing.tasks import import_job_apply_run, import_job_preview_run  # noqa: E402, F401


@shared_task(name="members.tasks.jobs_resubmit_stranded")
def jobs_resubmit_stranded() -> int:
    """Send again the import and export jobs still waiting for a worker (every few minutes)."""
    from members.broker_health import jobs_resubmit_stranded as resubmit

    return resubmit()
