"""Nightly jobs of the programme: thin, idempotent wrappers around services."""

import logging

from celery import shared_task

from members.services import points_expire_due
from rewards.evaluation import tiers_evaluate
from rewards.services import birthday_bonuses_grant, vouchers_expire

logger = logging.getLogger(__name__)


@shared_task(name="rewards.tasks.tiers_evaluate_nightly")
def tiers_evaluate_nightly() -> dict:
    """Evaluate every member's tier; a second run the same night changes nothing."""
    result = tiers_evaluate()
    logger.info("Tier evaluation: %s", result)
    return result.__dict__


@shared_task(name="rewards.tasks.points_expire_nightly")
def points_expire_nightly() -> int:
    """Post today's expiry entries; keys are per member and day, so a rerun posts nothing."""
    return points_expire_due()


@shared_task(name="rewards.tasks.vouchers_expire_nightly")
def vouchers_expire_nightly() -> int:
    """Mark vouchers past their date as expired."""
    return vouchers_expire()


@shared_task(name="rewards.tasks.birthday_bonuses_daily")
def birthday_bonuses_daily() -> int:
    """Post birthday bonuses whose window is open; one per member and year."""
    return birthday_bonuses_grant()
