"""Benchmark: RFM scoring, segment evaluation, campaign assignment and sending (issue 6).

On a database seeded by ``manage.py demo_seed`` this times:

- the nightly RFM scoring (``campaigns.rfm.rfm_compute``; goal at 1,000,000 members:
  under 120 s), run twice (the second replaces the first);
- counting a saved segment with three criteria (city, e-mail consent, RFM segment)
  (goal: under 2 s), and its live-preview sample;
- fixing the audience of a campaign to a segment of at least 500,000 members (the
  earliest-enrolled active members, cut at the enrolment date of the 500,000th; all active
  members on a smaller database), with a 10% control group and an A/B split (goal:
  500,000 members in under 60 s, scaled to the segment's size);
- messages per second through ``campaign_send_batch`` with the in-memory mail backend
  (no throttle), for the first ``--messages`` recipients with e-mail consent who were not
  messaged in the past week (so that a rerun does not time weekly-cap skips).

    DATABASE_URL=postgres://... python bench/campaigns.py [--messages 2000] [--rfm-runs 2]
        [--audience 500000]

Each timed line ends with the 1-minute load average when the step ended (the machine is
shared; a figure means little without it).

Changes the database (RFM rows, a segment, campaigns, deliveries): use a throwaway copy.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty_admin.settings.local")


def timed(label, goal, fn):
    started = time.monotonic()
    result = fn()
    seconds = time.monotonic() - started
    verdict = "" if goal is None else ("  OK" if seconds < goal else "  OVER GOAL")
    goal_text = "" if goal is None else f" (goal < {goal:.0f} s)"
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() \
        else "?"
    print(f"{label:<58} {seconds:8.2f} s{goal_text}{verdict}  [load {load}]", flush=True)
    return result, seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rfm-runs", type=int, default=2,
                        help="RFM scorings to time (0 keeps the current scores)")
    parser.add_argument("--audience", type=int, default=500_000,
                        help="Members the queued campaign must reach at least")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db.models import Count
    from django.utils import timezone

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    from campaigns import services
    from campaigns.models import Campaign, CampaignVariant, Segment
    from campaigns.rfm import rfm_compute
    from campaigns.selectors import segment_members, segment_preview
    from members.models import Member

    members = Member.objects.count()
    print(f"Members: {members:,}")
    for run in range(args.rfm_runs):
        label = "RFM scoring, first run" if run == 0 else f"RFM scoring, run {run + 1} (replaces)"
        result, _s = timed(label, 120, rfm_compute)
        print(f"  scored {result.members_scored:,} members")
    biggest_city = (Member.objects.values_list("city").annotate(n=Count("id"))
                    .order_by("-n").first()[0])
    segment, _created = Segment.objects.update_or_create(
        name="Bench: three criteria",
        defaults={"criteria": {"cities": [biggest_city], "email_consent": "yes",
                               "rfm_segments": ["champions", "loyal", "potential_loyalists",
                                                "need_attention", "at_risk"]}},
    )
    count, _s = timed("Segment with three criteria: count", 2,
                      lambda: segment_members(segment).count())
    print(f"  {count:,} members ({biggest_city}, e-mail consent, five RFM segments)")
    timed("Segment live preview (count + 10-member sample)", 2,
          lambda: segment_preview(segment_members(segment)))

    # E-mail consent is about 48% of active members in demo_seed data: under 500,000 at
    # 1M. An enrolment cut-off reaches the size the goal names on any database.
    active = Member.objects.filter(status=Member.Status.ACTIVE)
    nth = next(iter(active.order_by("enrolled_at").values_list("enrolled_at", flat=True)
                    [args.audience - 1:args.audience]), None)
    criteria = {"enrolled_to": timezone.localdate(nth).isoformat()} if nth else {}
    half, _created = Segment.objects.update_or_create(
        name="Bench: campaign audience", defaults={"criteria": criteria},
    )
    half_count = segment_members(half).count()
    print(f"Audience segment {criteria or '(all active members)'}: {half_count:,} members")
    user = get_user_model().objects.filter(is_superuser=True).first()
    campaign = Campaign.objects.create(name=f"Bench {time.time():.0f}", kind="newsletter",
                                       segment=half, control_percent=10, created_by=user)
    for code in ("A", "B"):
        CampaignVariant.objects.create(campaign=campaign, code=code, subject_en="Hi",
                                       body_en="Hello {{ first_name }}: {{ balance }} points")
    assigned, seconds = timed(
        f"Assign and queue a campaign to {half_count:,} members", 60 * half_count / 500_000,
        lambda: services.campaign_audience_assign(campaign=campaign))
    print(f"  {assigned:,} recipient rows, {assigned / seconds:,.0f} per second")

    # Sending: the running campaign, cut to its first --messages consenting recipients.
    Campaign.objects.filter(id=campaign.id).update(status=Campaign.Status.RUNNING)
    from campaigns.models import CampaignRecipient, MessageDelivery

    pending = CampaignRecipient.objects.filter(campaign=campaign, status="pending")
    # Every timed recipient should be a real message (a skip costs next to nothing): the
    # audience is cut by enrolment, not consent, so keep consenting members, and leave out
    # members messaged this week, whom an earlier run on the same database brought to the
    # weekly cap.
    recent = MessageDelivery.objects.filter(
        counts_to_cap=True, created_at__gte=timezone.now() - timedelta(days=7)
    ).values("member_id")
    keep = list(pending.filter(member__email_consent=True).exclude(member__email="")
                .exclude(member_id__in=recent)
                .order_by("id").values_list("id", flat=True)[:args.messages])
    pending.exclude(id__in=keep).update(status="skipped")
    from django.core import mail

    mail.outbox = []

    def send_all():
        while services.campaign_send_batch(campaign_id=campaign.id, batch_size=500,
                                           throttle=False).remaining:
            pass

    _r, seconds = timed(f"Send {len(keep):,} e-mails (locmem backend, no throttle)", None,
                        send_all)
    sent = len(mail.outbox)
    print(f"  {sent:,} e-mails sent ({len(keep) - sent:,} skipped by the weekly cap or "
          f"consent): {len(keep) / seconds:,.0f} recipients per second")


if __name__ == "__main__":
    main()
