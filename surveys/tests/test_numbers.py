"""NPS, its margin of error, CSAT, trends, before/after and the loyalty index on worked
examples written out here, through the roll-up and live alike."""

from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from members.tests.factories import MemberFactory
from surveys import selectors, services
from surveys.models import Response, RollupState, Survey
from surveys.tests.conftest import answer, invite

pytestmark = pytest.mark.django_db


def at_day(day, hour=12):
    return datetime.combine(day, time(hour), tzinfo=timezone.get_current_timezone())


def bulk_answers(survey, scores, *, on, member=None):
    """Store answers as an import would (no invitation): numbers only need the rows."""
    member = member or MemberFactory()
    Response.objects.bulk_create([
        Response(survey=survey, member=member, source=Response.Source.IMPORT, score=score,
                 answered_at=at_day(on), touchpoint=survey.touchpoint, language="en")
        for score in scores
    ])


# ------------------------------------------------------------------ formulas


def test_nps_and_margin_of_error_on_ten_answers():
    # 10, 10, 9, 9, 9 promoters; 8, 7 passives; 6, 3, 0 detractors.
    # NPS = (5 − 3) / 10 × 100 = 20.
    # var = 0.5 + 0.3 − (0.5 − 0.3)² = 0.76  (= 0.5·0.5 + 0.3·0.7 + 2·0.5·0.3)
    # MoE = 1.96 × sqrt(0.76 / 10) × 100 = 54.03
    assert selectors.nps_value(5, 3, 10) == 20
    assert selectors.nps_margin_of_error(5, 3, 10) == pytest.approx(54.0335, abs=1e-3)


def test_margin_of_error_shrinks_with_two_hundred_answers():
    # 100 promoters, 60 passives, 40 detractors: NPS 30; var = 0.5 + 0.2 − 0.3² = 0.61;
    # MoE = 1.96 × sqrt(0.61 / 200) × 100 = 10.82.
    assert selectors.nps_value(100, 40, 200) == 30
    assert selectors.nps_margin_of_error(100, 40, 200) == pytest.approx(10.8245, abs=1e-3)


def test_the_two_variance_formulas_agree():
    for promoters, detractors, n in [(5, 3, 10), (1, 8, 9), (40, 40, 100), (0, 3, 7)]:
        p, d = promoters / n, detractors / n
        other = 1.96 * ((p * (1 - p) + d * (1 - d) + 2 * p * d) / n) ** 0.5 * 100
        assert selectors.nps_margin_of_error(promoters, detractors, n) == pytest.approx(other)


def test_all_promoters_all_detractors_and_no_answers():
    assert selectors.nps_value(4, 0, 4) == 100
    assert selectors.nps_margin_of_error(4, 0, 4) == 0
    assert selectors.nps_value(0, 4, 4) == -100
    assert selectors.nps_margin_of_error(0, 4, 4) == 0
    assert selectors.nps_value(0, 0, 0) is None
    assert selectors.nps_margin_of_error(0, 0, 0) is None


# ------------------------------------------------------------------ summaries


def test_nps_summary_counts_response_rate_and_margin(nps_survey):
    today = timezone.localdate()
    for score in (10, 10, 9, 9, 9, 8, 7, 6, 3, 0):
        answer(nps_survey, score)
    for _ in range(15):  # invited, never answered
        invite(nps_survey, MemberFactory())
    summary = selectors.nps_summary(start=today, end=today, survey_id=nps_survey.pk)
    assert (summary.responses, summary.promoters, summary.passives, summary.detractors) == (
        10, 5, 2, 3)
    assert summary.nps == 20
    assert summary.margin_of_error == pytest.approx(54.0335, abs=1e-3)
    # 10 answered of 25 invited.
    assert (summary.via_link, summary.invited) == (10, 25)
    assert summary.response_rate == pytest.approx(40.0)


def test_nps_summary_of_all_promoters_all_detractors_and_nobody(nps_survey):
    today = timezone.localdate()
    bulk_answers(nps_survey, [9, 10, 10], on=today)
    summary = selectors.nps_summary(start=today, end=today)
    assert (summary.nps, summary.margin_of_error) == (100, 0)
    assert summary.response_rate is None  # imported answers: nobody was invited
    yesterday = today - timedelta(days=1)
    bulk_answers(nps_survey, [0, 6, 3], on=yesterday)
    summary = selectors.nps_summary(start=yesterday, end=yesterday)
    assert (summary.nps, summary.margin_of_error, summary.detractors) == (-100, 0, 3)
    empty = selectors.nps_summary(start=today - timedelta(days=30),
                                  end=today - timedelta(days=20))
    assert (empty.responses, empty.nps, empty.margin_of_error, empty.response_rate) == (
        0, None, None, None)


def test_csat_mean_and_top_two_boxes_on_five_and_ten_point_scales(csat_survey):
    today = timezone.localdate()
    # 1-5: 5, 5, 4, 3, 2, 1 → mean 20 / 6 = 3.33; top two (4-5): 3 of 6 = 50%;
    # bottom two (1-2): 2; margin of the share = 1.96 × sqrt(0.25 / 6) × 100 = 40.01.
    bulk_answers(csat_survey, [5, 5, 4, 3, 2, 1], on=today)
    ten = Survey.objects.create(code="csat-10", name="CSAT 10", kind=Survey.Kind.CSAT,
                                csat_scale=10)
    # 1-10: 10, 9, 8, 2 → mean 29 / 4 = 7.25; top two (9-10): 2 of 4 = 50%.
    bulk_answers(ten, [10, 9, 8, 2], on=today)
    five = selectors.csat_summary(start=today, end=today, survey_id=csat_survey.pk)
    assert five.mean == pytest.approx(20 / 6)
    assert (five.top_two, five.top_two_share, five.bottom_two) == (3, 50.0, 2)
    assert five.margin_of_error == pytest.approx(40.0083, abs=1e-3)
    tenth = selectors.csat_summary(start=today, end=today, survey_id=ten.pk)
    assert (tenth.mean, tenth.top_two_share, tenth.scale) == (7.25, 50.0, 10)
    # Without a survey, one scale at a time: never a mean of 1-5 and 1-10 scores mixed.
    assert selectors.csat_summary(start=today, end=today).responses == 6
    assert selectors.csat_summary(start=today, end=today, scale=10).responses == 4
    empty = selectors.csat_summary(start=today - timedelta(days=9),
                                   end=today - timedelta(days=8))
    assert (empty.mean, empty.top_two_share, empty.margin_of_error) == (None, None, None)


# ------------------------------------------------------------------ roll-up


def test_rollup_gives_the_same_numbers_as_the_answers_and_is_read_instead(nps_survey):
    today = timezone.localdate()
    bulk_answers(nps_survey, [10, 9, 8, 2], on=today - timedelta(days=3))
    bulk_answers(nps_survey, [0, 0, 10], on=today - timedelta(days=1))
    bulk_answers(nps_survey, [9], on=today)
    start = today - timedelta(days=7)
    live = selectors.nps_summary(start=start, end=today)
    assert (live.responses, live.promoters, live.detractors) == (8, 4, 3)
    services.responses_rollup_nightly()
    assert RollupState.objects.get().complete_through == today - timedelta(days=1)
    assert selectors.nps_summary(start=start, end=today) == live
    services.responses_rollup_nightly()  # twice: the same rows
    assert selectors.nps_summary(start=start, end=today) == live
    # Past days now come from the roll-up: a change behind its back is not seen until
    # the next refresh, while today is still read live.
    Response.objects.filter(answered_at__date__lt=today).update(score=10)
    assert selectors.nps_summary(start=start, end=today) == live
    bulk_answers(nps_survey, [0], on=today)
    assert selectors.nps_summary(start=start, end=today).detractors == 4


def test_breakdowns_by_tier_store_rfm_and_touchpoint(nps_survey, csat_survey):
    from members.tests.factories import StoreFactory
    from rewards.models import MemberTier, Tier

    today = timezone.localdate()
    gold = Tier.objects.create(name="Gold", rank=1, threshold=0)
    store = StoreFactory(code="MSK-1", name="Moscow")
    gold_member = MemberFactory()
    MemberTier.objects.create(member=gold_member, tier=gold)
    yesterday = timezone.now() - timedelta(days=1)
    answer(nps_survey, 10, member=gold_member, at=yesterday)
    answer(nps_survey, 0, at=yesterday)
    Response.objects.filter(member=gold_member).update(store=store)
    for day_offset in (0, 1):
        if day_offset:
            services.responses_rollup_nightly()
        tiers = {row.label: row.summary.nps for row in selectors.breakdown(
            start=today - timedelta(days=2), end=today, dimension="tier")}
        assert tiers == {"Gold": 100, "none": -100}
        stores = {row.label: row.summary.responses for row in selectors.breakdown(
            start=today - timedelta(days=2), end=today, dimension="store")}
        assert stores == {"Moscow": 1, "none": 1}
    touchpoints = selectors.breakdown(start=today - timedelta(days=2), end=today,
                                      dimension="touchpoint")
    assert [(row.label, row.summary.responses) for row in touchpoints] == [
        ("After a purchase", 2)]
    rfm = selectors.breakdown(start=today - timedelta(days=2), end=today, dimension="rfm")
    assert [row.label for row in rfm] == ["none"]


def test_weekly_and_monthly_trend_with_an_empty_week(nps_survey):
    monday = timezone.localdate() - timedelta(days=timezone.localdate().weekday() + 21)
    bulk_answers(nps_survey, [10, 10, 0], on=monday)  # NPS 33.3
    bulk_answers(nps_survey, [0, 5], on=monday + timedelta(days=15))  # week 3: −100
    services.responses_rollup_nightly()
    trend = selectors.nps_trend(start=monday, end=monday + timedelta(days=20), grain="week")
    assert [point.period_start for point in trend] == [
        monday, monday + timedelta(days=7), monday + timedelta(days=14)]
    assert trend[0].summary.nps == pytest.approx(100 / 3)
    assert trend[1].summary.responses == 0 and trend[1].summary.nps is None
    assert trend[2].summary.nps == -100
    months = selectors.nps_trend(start=monday, end=monday + timedelta(days=20), grain="month")
    assert sum(point.summary.responses for point in months) == 5
    assert all(point.period_start.day == 1 for point in months)


def test_before_after_says_whether_the_change_beats_the_margin_of_error(nps_survey):
    pivot = timezone.localdate() - timedelta(days=10)
    # Before: 10 promoters, 20 passives, 10 detractors → NPS 0, MoE 21.91.
    bulk_answers(nps_survey, [10] * 10 + [8] * 20 + [3] * 10, on=pivot - timedelta(days=2))
    # After: 30 promoters, 6 passives, 4 detractors → NPS 65, MoE 20.26.
    bulk_answers(nps_survey, [9] * 30 + [7] * 6 + [0] * 4, on=pivot + timedelta(days=1))
    # Outside both 5-day windows: ignored.
    bulk_answers(nps_survey, [0] * 50, on=pivot - timedelta(days=6))
    result = selectors.before_after(pivot=pivot, days=5, survey_id=nps_survey.pk)
    assert (result.before.nps, result.after.nps) == (0, 65)
    assert result.change == 65
    # sqrt(21.91² + 20.26²) = 29.85 < 65: larger than the margin of error.
    assert result.margin_of_error == pytest.approx(29.8458, abs=1e-3)
    assert result.significant is True


def test_before_after_within_the_margin_is_not_significant(nps_survey):
    pivot = timezone.localdate() - timedelta(days=10)
    # Before 12/20/8 of 40 → NPS 10; after 14/18/8 → NPS 15: +5 within ±31.26.
    bulk_answers(nps_survey, [9] * 12 + [7] * 20 + [1] * 8, on=pivot - timedelta(days=1))
    bulk_answers(nps_survey, [9] * 14 + [7] * 18 + [1] * 8, on=pivot)
    result = selectors.before_after(pivot=pivot, days=3)
    assert result.change == pytest.approx(5)
    assert result.margin_of_error == pytest.approx(31.2603, abs=1e-3)
    assert result.significant is False


# ------------------------------------------------------------------ loyalty index


def test_loyalty_index_preset_formula_and_its_refusals():
    preset = "(satisfaction + service) / emotional_connection"
    codes = {"satisfaction", "service", "emotional_connection"}
    assert services.loyalty_formula_check(preset, codes) == []
    # (8 + 6) / 7 = 2
    assert services.loyalty_index_compute(
        preset, {"satisfaction": 8, "service": 6, "emotional_connection": 7}) == Decimal("2")
    # (9 + 10) / 3 = 6.3333
    assert services.loyalty_index_compute(
        preset, {"satisfaction": 9, "service": 10, "emotional_connection": 3}
    ) == Decimal("6.3333")
    assert services.loyalty_index_compute(
        preset, {"satisfaction": 9, "service": 10, "emotional_connection": 0}) is None
    assert services.loyalty_index_compute(preset, {"satisfaction": 9}) is None
    assert services.loyalty_formula_check("__import__('os').system('x')", codes)
    assert services.loyalty_formula_check("satisfaction ** 2", codes)
    problems = services.loyalty_formula_check("(satisfaction + price) / 2", codes)
    assert problems == ["“price” is not the code of a scale question of this survey."]


def test_multi_question_answers_give_the_index_and_its_distribution(member):
    from surveys.models import Question

    survey = Survey.objects.create(code="loyal", name="Loyalty", kind=Survey.Kind.MULTI,
                                   loyalty_formula="(satisfaction + service) / "
                                                   "emotional_connection")
    for position, code in enumerate(("satisfaction", "service", "emotional_connection")):
        Question.objects.create(survey=survey, position=position, code=code,
                                text_en=code, text_ru=code, scale_min=1, scale_max=10)
    Question.objects.create(survey=survey, position=3, code="visits", kind="choice",
                            text_en="Visits", text_ru="Визиты", choices_en="Weekly\nRarely")
    values = [(8, 6, 7), (10, 10, 2), (4, 4, 8), (9, 9, 9)]  # 2, 10, 1, 2
    for satisfaction, service, emotional in values:
        token = invite(survey, MemberFactory())
        services.response_submit(token=token, data=services.AnswerInput(answers={
            "satisfaction": satisfaction, "service": service,
            "emotional_connection": emotional, "visits": "1"}))
    indexes = sorted(Response.objects.values_list("loyalty_index", flat=True))
    assert indexes == [Decimal("1"), Decimal("2"), Decimal("2"), Decimal("10")]
    distribution = selectors.loyalty_distribution(survey_id=survey.pk, bins=3)
    assert (distribution.count, distribution.minimum, distribution.maximum) == (4, 1.0, 10.0)
    assert distribution.mean == pytest.approx(3.75)
    # Bins of width 3 from 1: [1, 4) holds 1, 2, 2; [4, 7) nothing; [7, 10] holds 10.
    assert [count for _low, _high, count in distribution.bins] == [3, 0, 1]
