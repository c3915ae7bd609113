"""Demonstration campaigns: RFM scores, two segments and campaigns with results to look at.

Idempotent: what exists (by name) is left as it is; RFM is recomputed every run.
"""

from datetime import timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils import timezone

from campaigns import services
from campaigns.models import Campaign, CampaignVariant, Segment
from campaigns.rfm import rfm_compute

WELCOME_EN = ("Welcome, {{ first_name }}!",
              "Dear {{ first_name }},\n\nthank you for joining. Your card {{ card_number }} "
              "already holds {{ balance }} points.")
WELCOME_RU = ("Добро пожаловать, {{ first_name }}!",
              "{{ first_name }}, спасибо, что присоединились! На карте {{ card_number }} уже "
              "{{ balance }} баллов.")


class Command(BaseCommand):
    help = "Compute RFM and create demo segments and campaigns (idempotent)."

    def handle(self, *args, **options):
        result = rfm_compute()
        self.stdout.write(f"RFM: {result.members_scored} members scored.")
        users = get_user_model().objects
        maker = users.filter(username="manager").first() or users.filter(is_superuser=True).first()
        checker = users.filter(is_superuser=True).exclude(id=getattr(maker, "id", None)).first()
        if maker is None or checker is None:
            self.stdout.write("Demo users missing (run demo_logins first); no campaigns made.")
            return
        at_risk = self._segment("At risk, e-mail allowed", {
            "rfm_segments": ["at_risk", "cannot_lose", "hibernating"], "email_consent": "yes",
        }, maker)
        best = self._segment("Champions and loyal", {
            "rfm_segments": ["champions", "loyal"],
        }, maker)
        now = timezone.now()

        # A finished A/B newsletter, launched a month ago so purchases since count.
        if not Campaign.objects.filter(name="Come back: 20% weekend").exists():
            campaign = self._campaign(
                "Come back: 20% weekend", Campaign.Kind.NEWSLETTER, at_risk, maker,
                control_percent=20, attribution_days=30, starts_at=now - timedelta(days=120),
                variants=[
                    ("A", "{{ first_name }}, we miss you",
                     "Dear {{ first_name }}, come back this weekend for 20% off. "
                     "You have {{ balance }} points.",
                     "{{ first_name }}, мы скучаем",
                     "{{ first_name }}, приходите в выходные: скидка 20%. "
                     "У вас {{ balance }} баллов."),
                    ("B", "20% off, only this weekend",
                     "{{ first_name }}, 20% off everything this weekend. Your tier: {{ tier }}.",
                     "Скидка 20% только в выходные",
                     "{{ first_name }}, скидка 20% на всё в выходные. Ваш уровень: {{ tier }}."),
                ])
            self._run(campaign, maker, checker, now - timedelta(days=120))
        if not Campaign.objects.filter(name="Double points for our best").exists():
            campaign = self._campaign(
                "Double points for our best", Campaign.Kind.MULTIPLIER, best, maker,
                multiplier=Decimal("2"), control_percent=10, starts_at=now - timedelta(days=2),
                ends_at=now + timedelta(days=12),
                variants=[("A", "Double points until {{ expiring_on }}",
                           "{{ first_name }}, every purchase earns double points for two weeks.",
                           "Двойные баллы", "{{ first_name }}, две недели — двойные баллы.")])
            self._run(campaign, maker, checker, now - timedelta(days=2))
        if not Campaign.objects.filter(name="Welcome series").exists():
            campaign = self._campaign("Welcome series", Campaign.Kind.WELCOME, None, maker,
                                      control_percent=0, variants=[("A", *WELCOME_EN,
                                                                    *WELCOME_RU)])
            services.campaign_submit(campaign_id=campaign.id, actor=maker)
            services.campaign_approve(campaign_id=campaign.id, actor=checker)
            services.campaign_launch(campaign_id=campaign.id, actor=checker)
        if not Campaign.objects.filter(name="Birthday bonus 500").exists():
            campaign = self._campaign(
                "Birthday bonus 500", Campaign.Kind.BONUS_POINTS, best, maker, bonus_points=500,
                budget_points=50000,
                variants=[("A", "Happy birthday, {{ first_name }}!",
                           "{{ bonus_points }} points are on your card.",
                           "С днём рождения, {{ first_name }}!",
                           "На карте {{ bonus_points }} баллов в подарок.")])
            services.campaign_submit(campaign_id=campaign.id, actor=maker)
        self.stdout.write(self.style.SUCCESS("Demo campaigns ready."))

    def _segment(self, name, criteria, maker):
        segment = Segment.objects.filter(name=name).first()
        if segment is None:
            segment = Segment(name=name, criteria=criteria)
            services.segment_save(segment=segment, actor=maker)
        else:
            services.segment_count_refresh(segment=segment)
        return segment

    def _campaign(self, name, kind, segment, maker, variants, **fields):
        campaign = Campaign.objects.create(name=name, kind=kind, segment=segment,
                                           created_by=maker, **fields)
        for code, subject_en, body_en, subject_ru, body_ru in variants:
            CampaignVariant.objects.create(campaign=campaign, code=code, subject_en=subject_en,
                                           body_en=body_en, subject_ru=subject_ru,
                                           body_ru=body_ru)
        return campaign

    def _run(self, campaign, maker, checker, launched_at):
        services.campaign_submit(campaign_id=campaign.id, actor=maker)
        services.campaign_approve(campaign_id=campaign.id, actor=checker)
        services.campaign_launch(campaign_id=campaign.id, actor=checker, now=launched_at)
        while services.campaign_send_batch(campaign_id=campaign.id, throttle=False).remaining:
            pass
