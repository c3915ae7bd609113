"""Campaign jobs: thin, idempotent wrappers around services; arguments are ids only."""

import logging

from celery import shared_task

from campaigns.rfm import rfm_compute
from campaigns.services import campaign_results_refresh, campaign_send_batch, campaigns_tick

logger = logging.getLogger(__name__)

# A task sends at most this many batches, then queues its continuation: short tasks keep
# a redelivery (after a worker dies) from overlapping a long-running one.
_BATCHES_PER_TASK = 25


@shared_task(name="campaigns.tasks.rfm_nightly")
def rfm_nightly() -> dict:
    """Recompute every member's RFM scores; a rerun replaces them with the same."""
    result = rfm_compute()
    logger.info("RFM: %s", result)
    return {"members_scored": result.members_scored, "seconds": str(result.seconds)}


@shared_task(name="campaigns.tasks.campaign_send")
def campaign_send(campaign_id: int) -> int:
    """Send to a campaign's pending recipients; resumable, every message keyed per member."""
    processed = 0
    for _batch in range(_BATCHES_PER_TASK):
        result = campaign_send_batch(campaign_id=campaign_id)
        processed += result.processed
        if not result.remaining:
            return processed
    campaign_send.delay(campaign_id)
    return processed


@shared_task(name="campaigns.tasks.campaigns_tick")
def campaigns_tick_task() -> dict:
    """Launch due campaigns, finish ended ones, run today's triggers (welcome, birthday,
    reactivation, expiring points)."""
    return campaigns_tick()


@shared_task(name="campaigns.tasks.campaign_results_refresh")
def campaign_results_refresh_task() -> int:
    """Recompute the kept figures of campaigns whose results can still change."""
    return campaign_results_refresh()
