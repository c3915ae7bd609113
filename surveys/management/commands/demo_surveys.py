"""Demo surveys with answers and follow-ups; running it again changes nothing."""

import random
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from members.models import Member, Purchase
from surveys import services
from surveys.models import LOYALTY_PRESET, FollowUp, Question, Survey

COMMENTS = {
    "good": [
        "Great service, friendly staff, thank you!",
        "Fast checkout and fresh products.",
        "Отличный магазин, вежливый персонал.",
        "Всё понравилось, спасибо!",
        "Love the points and rewards, easy to use app.",
    ],
    "middle": [
        "OK overall.",
        "Нормально.",
        "Prices could be lower.",
        "",
        "",
    ],
    "bad": [
        "Waited 20 minutes in the queue, the cashier was rude.",
        "Доставка опоздала на два часа, курьер был груб.",
        "Очень дорого и грязно в зале.",
        "The app crashes when I try to use my points.",
        "Product was stale, not happy at all.",
    ],
}


class Command(BaseCommand):
    help = "Create demo surveys (NPS, CSAT, loyalty index) with answers and follow-ups."

    def add_arguments(self, parser):
        parser.add_argument("--answers", type=int, default=160,
                            help="Answers per survey (default 160).")

    def handle(self, *args, answers: int, **options):
        members = list(Member.objects.filter(status=Member.Status.ACTIVE)
                       .order_by("id").values_list("id", flat=True)[:answers * 2])
        if not members:
            self.stdout.write("No members: run demo_seed first.")
            return
        now = timezone.now()
        start = now - timedelta(days=120)
        nps, created_nps = Survey.objects.get_or_create(code="nps-after-purchase", defaults={
            "name": "NPS after a purchase", "kind": Survey.Kind.NPS,
            "touchpoint": "after_purchase", "starts_at": start, "link_valid_days": 14})
        csat, created_csat = Survey.objects.get_or_create(code="csat-delivery", defaults={
            "name": "Delivery satisfaction", "kind": Survey.Kind.CSAT, "csat_scale": 5,
            "touchpoint": "delivery", "starts_at": start,
            "question_en": "How satisfied are you with your delivery?",
            "question_ru": "Насколько вы довольны доставкой?"})
        loyalty, created_loyalty = Survey.objects.get_or_create(code="loyalty-index", defaults={
            "name": "Loyalty index", "kind": Survey.Kind.MULTI, "touchpoint": "store",
            "starts_at": start, "loyalty_formula": LOYALTY_PRESET})
        if created_loyalty:
            for position, (code, en, ru) in enumerate([
                ("satisfaction", "How satisfied are you with us overall?",
                 "Насколько вы довольны нами в целом?"),
                ("service", "How do you rate our service?", "Как вы оцениваете наш сервис?"),
                ("emotional_connection", "How close do you feel to our brand?",
                 "Насколько вам близок наш бренд?"),
            ]):
                Question.objects.create(survey=loyalty, position=position, code=code,
                                        kind=Question.Kind.SCALE, text_en=en, text_ru=ru,
                                        scale_min=1, scale_max=10)
            Question.objects.create(
                survey=loyalty, position=3, code="visits", kind=Question.Kind.CHOICE,
                text_en="How often do you visit us?", text_ru="Как часто вы к нам приходите?",
                choices_en="Weekly\nMonthly\nRarely",
                choices_ru="Каждую неделю\nРаз в месяц\nРедко")
            Question.objects.create(
                survey=loyalty, position=4, code="wish", kind=Question.Kind.TEXT, required=False,
                text_en="What should we do better?", text_ru="Что нам улучшить?")
        rng = random.Random(2026)
        made = 0
        for survey, fresh in ((nps, created_nps), (csat, created_csat),
                              (loyalty, created_loyalty)):
            if not fresh and survey.responses.exists():
                continue
            made += self._answers(survey, members, answers, rng, now)
        if made:  # a rerun leaves the queue as it is
            self._follow_ups_work(rng)
        rows = services.responses_rollup_nightly(days=130)
        self.stdout.write(f"Demo surveys ready: {made} new answers, {rows} roll-up rows.")

    def _answers(self, survey, members, count, rng, now) -> int:
        picked = rng.sample(members, min(count, len(members)))
        purchases = dict(Purchase.objects.filter(member_id__in=picked).order_by(
            "member_id", "-purchased_at").values_list("member_id", "id"))
        made = 0
        for member_id in picked:
            answered = now - timedelta(days=rng.randint(0, 115), minutes=rng.randint(0, 600))
            sent = answered - timedelta(hours=rng.randint(1, 48))
            with transaction.atomic():
                batch = services.invitations_create(
                    survey_id=survey.pk, member_ids=[member_id], now=sent, send=False,
                    purchase_id=purchases.get(member_id) if survey.kind == "nps" else None)
                if not batch.created_ids or rng.random() < 0.2:
                    continue  # a fifth never answer: the response rate is not 100%
                invitation = survey.invitations.get(pk=batch.created_ids[0])
                token = services.invitation_token(invitation)
                data = self._data(survey, rng)
                services.response_submit(token=token, data=data, now=answered)
                made += 1
        return made

    def _data(self, survey, rng) -> services.AnswerInput:
        mood = rng.choices(["good", "middle", "bad"], weights=[5, 3, 2])[0]
        comment = rng.choice(COMMENTS[mood]) if rng.random() < 0.7 else ""
        if survey.kind == Survey.Kind.NPS:
            score = {"good": rng.randint(9, 10), "middle": rng.randint(7, 8),
                     "bad": rng.randint(0, 6)}[mood]
            return services.AnswerInput(score=score, comment=comment)
        if survey.kind == Survey.Kind.CSAT:
            score = {"good": rng.randint(4, 5), "middle": 3, "bad": rng.randint(1, 2)}[mood]
            return services.AnswerInput(score=score, comment=comment)
        base = {"good": 8, "middle": 6, "bad": 3}[mood]
        return services.AnswerInput(answers={
            "satisfaction": str(min(10, max(1, base + rng.randint(-1, 2)))),
            "service": str(min(10, max(1, base + rng.randint(-2, 2)))),
            "emotional_connection": str(min(10, max(1, base + rng.randint(-2, 1)))),
            "visits": str(rng.randint(0, 2)), "wish": comment,
        })

    def _follow_ups_work(self, rng) -> None:
        """Resolve the older half of the open follow-ups, some with goodwill points."""
        actor = get_user_model().objects.filter(username="support").first()
        today = timezone.localdate()
        for follow_up in FollowUp.objects.filter(
                status=FollowUp.Status.OPEN, due_date__lt=today - timedelta(days=30)):
            if rng.random() < 0.3:
                continue
            services.follow_up_resolve(
                follow_up_id=follow_up.pk, actor=actor,
                outcome=rng.choice(FollowUp.Outcome.values),
                note="Called the member, apologised.",
                goodwill_points=rng.choice([0, 0, 100, 200]),
            )
