"""Celery tasks of the dashboards: thin, idempotent, arguments are dates and ids only."""

from datetime import date

from celery import shared_task

from loyalty_admin.dashboards import rollups


@shared_task(name="loyalty_admin.tasks.rollups_nightly")
def rollups_nightly() -> int:
    """Roll up yesterday and the day before, then the lifetime value inputs (safe twice)."""
    return rollups.rollup_nightly().pk


@shared_task(name="loyalty_admin.tasks.rollups_recompute")
def rollups_recompute(first: str, last: str, user_id: int | None = None) -> int:
    """Recompute the roll-ups of days ``first`` to ``last`` (ISO dates; safe twice)."""
    run = rollups.rollup_days(
        first=date.fromisoformat(first), last=date.fromisoformat(last),
        trigger=rollups.TRIGGER_RECOMPUTE, user_id=user_id,
    )
    return run.pk


@shared_task(name="loyalty_admin.tasks.rollups_today")
def rollups_today(run_id: int | None = None) -> int:
    """Roll up today, for the dashboards' live day (``run_id``: the run asked for)."""
    from django.utils import timezone

    today = timezone.localdate()
    run = rollups.rollup_days(first=today, last=today, trigger=rollups.TRIGGER_LIVE,
                              run_id=run_id)
    return run.pk
