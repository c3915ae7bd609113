"""Celery tasks of the surveys app: thin, idempotent, ids and ISO dates only."""

from datetime import date

from celery import shared_task

from surveys import services


@shared_task(acks_late=True)
def invitations_send(invitation_ids: list[int]) -> int:
    """Send the links of these invitations; a rerun sends nothing twice (message keys)."""
    for invitation_id in invitation_ids:
        services.invitation_send(invitation_id=invitation_id)
    return len(invitation_ids)


@shared_task(acks_late=True)
def responses_rollup_nightly() -> int:
    """Rebuild the last complete days of the daily answers roll-up (beat: 02:15)."""
    return services.responses_rollup_nightly()


@shared_task(acks_late=True)
def responses_rollup_refresh(start: str, end: str) -> int:
    """Rebuild the roll-up for the days from ``start`` to ``end`` (ISO dates), e.g. after
    an import of old answers."""
    return services.responses_rollup_refresh(
        start=date.fromisoformat(start), end=date.fromisoformat(end)
    )
