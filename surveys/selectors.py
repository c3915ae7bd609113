"""Survey numbers for the results page and the dashboards: NPS, CSAT, trends, breakdowns.

Every figure is read from the daily roll-up (:class:`surveys.models.ResponseDaily`) for
the days it holds (up to ``RollupState.complete_through``, normally yesterday) and live
from the answers for the later days (normally today), so the numbers are current
without reading a million answers. Formulas (also in the README):

- NPS = 100 × (promoters − detractors) / n; promoters score 9-10, passives 7-8,
  detractors 0-6.
- Margin of error (95%) = 1.96 × sqrt(var / n) × 100 with
  var = p_pro + p_det − (p_pro − p_det)², the variance of a score of +1 (promoter),
  0 (passive) or −1 (detractor); the same as
  p_pro(1 − p_pro) + p_det(1 − p_det) + 2·p_pro·p_det.
- Response rate = answers through invitation links / invitations sent, both counted in
  the period (imported answers have no invitation and are left out of it).
- CSAT mean = sum of scores / n; top-two-box share = answers in the two highest boxes
  (4-5 on 1-5, 9-10 on 1-10) / n, with its margin 1.96 × sqrt(p(1 − p) / n) × 100.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from datetime import date, timedelta

from django.db.models import Case, CharField, Count, F, Max, Min, Q, Sum, When
from django.db.models.functions import TruncDate
from django.utils.translation import gettext_lazy as _

from members.models import Store
from surveys.models import (
    FollowUp,
    Invitation,
    Response,
    ResponseDaily,
    ResponseTheme,
    RollupState,
    Sentiment,
    Survey,
    Touchpoint,
)
from surveys.sentiment import THEME_LABELS
from surveys.services import DIMENSIONS, day_bounds, response_counts

Z95 = 1.96


@dataclass
class Counts:
    """Sums of the roll-up counters over some answers."""

    responses: int = 0
    promoters: int = 0
    passives: int = 0
    detractors: int = 0
    score_sum: int = 0
    top_two: int = 0
    bottom_two: int = 0
    via_link: int = 0
    invited: int = 0

    def add(self, row: dict) -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + (row.get(item.name) or 0))


COUNTER_NAMES = tuple(item.name for item in fields(Counts))


# ------------------------------------------------------------------ formulas


def nps_value(promoters: int, detractors: int, n: int) -> float | None:
    """Return the NPS in points (−100..100), or None without answers."""
    if n == 0:
        return None
    return 100.0 * (promoters - detractors) / n


def nps_margin_of_error(promoters: int, detractors: int, n: int) -> float | None:
    """Return the 95% margin of error of the NPS in points, or None without answers.

    1.96 × sqrt((p_pro + p_det − (p_pro − p_det)²) / n) × 100.
    """
    if n == 0:
        return None
    p_pro, p_det = promoters / n, detractors / n
    variance = max(p_pro + p_det - (p_pro - p_det) ** 2, 0.0)
    return Z95 * math.sqrt(variance / n) * 100.0


def share_margin_of_error(hits: int, n: int) -> float | None:
    """Return the 95% margin of error of a share in percentage points (None for n = 0)."""
    if n == 0:
        return None
    p = hits / n
    return Z95 * math.sqrt(p * (1 - p) / n) * 100.0


@dataclass
class NpsSummary:
    """NPS over a period: counts, the score, its 95% margin and the response rate.

    ``nps`` and ``margin_of_error`` are in points (−100..100), ``response_rate`` in
    percent; each is None when there is nothing to divide by.
    """

    start: date
    end: date
    responses: int
    promoters: int
    passives: int
    detractors: int
    nps: float | None
    margin_of_error: float | None
    invited: int
    via_link: int
    response_rate: float | None

    @property
    def promoters_pct(self) -> float | None:
        return 100.0 * self.promoters / self.responses if self.responses else None

    @property
    def passives_pct(self) -> float | None:
        return 100.0 * self.passives / self.responses if self.responses else None

    @property
    def detractors_pct(self) -> float | None:
        return 100.0 * self.detractors / self.responses if self.responses else None


@dataclass
class CsatSummary:
    """CSAT over a period on one scale: mean score and top-two-box share (percent)."""

    start: date
    end: date
    scale: int
    responses: int
    mean: float | None
    top_two: int
    top_two_share: float | None
    bottom_two: int
    margin_of_error: float | None
    invited: int
    via_link: int
    response_rate: float | None


def _rate(via_link: int, invited: int) -> float | None:
    return 100.0 * via_link / invited if invited else None


def nps_from_counts(counts: Counts, start: date, end: date) -> NpsSummary:
    n = counts.responses
    return NpsSummary(
        start=start, end=end, responses=n, promoters=counts.promoters,
        passives=counts.passives, detractors=counts.detractors,
        nps=nps_value(counts.promoters, counts.detractors, n),
        margin_of_error=nps_margin_of_error(counts.promoters, counts.detractors, n),
        invited=counts.invited, via_link=counts.via_link,
        response_rate=_rate(counts.via_link, counts.invited),
    )


def csat_from_counts(counts: Counts, start: date, end: date, scale: int) -> CsatSummary:
    n = counts.responses
    return CsatSummary(
        start=start, end=end, scale=scale, responses=n,
        mean=counts.score_sum / n if n else None, top_two=counts.top_two,
        top_two_share=100.0 * counts.top_two / n if n else None,
        bottom_two=counts.bottom_two,
        margin_of_error=share_margin_of_error(counts.top_two, n),
        invited=counts.invited, via_link=counts.via_link,
        response_rate=_rate(counts.via_link, counts.invited),
    )


# ------------------------------------------------------------------ reading


def rollup_complete_through() -> date | None:
    """Return the last day the roll-up holds completely (None: read everything live)."""
    return RollupState.objects.filter(pk=1).values_list("complete_through", flat=True).first()


def _collect(
    *, start: date, end: date, kind: str, group: tuple[str, ...] = (),
    dimension: str = "all", survey_id: int | None = None, scale: int | None = None,
    complete_through: date | None = None, use_rollup: bool = True,
) -> dict[tuple, Counts]:
    """Return the counters by ``group`` (``day``, ``value``, ``touchpoint``,
    ``survey_id``) for answers of ``kind`` between ``start`` and ``end`` (inclusive)."""
    result: dict[tuple, Counts] = {}

    def merge(rows, names):
        for row in rows:
            key = tuple(row[name] for name in names)
            result.setdefault(key, Counts()).add(row)

    through = complete_through if use_rollup else None
    if through is not None and start <= through:
        rows = ResponseDaily.objects.filter(
            day__gte=start, day__lte=min(end, through), dimension=dimension, kind=kind)
        if survey_id is not None:
            rows = rows.filter(survey_id=survey_id)
        if scale is not None:
            rows = rows.filter(survey__csat_scale=scale)
        merge(rows.values(*group).annotate(**{n: Sum(n) for n in COUNTER_NAMES}).order_by(),
              group)
    live_start = max(start, through + timedelta(days=1)) if through is not None else start
    if live_start > end:
        return result
    low, high = day_bounds(live_start, end)
    answers = Response.objects.filter(answered_at__gte=low, answered_at__lt=high,
                                      survey__kind=kind)
    invitations = Invitation.objects.filter(created_at__gte=low, created_at__lt=high,
                                            survey__kind=kind)
    if survey_id is not None:
        answers = answers.filter(survey_id=survey_id)
        invitations = invitations.filter(survey_id=survey_id)
    if scale is not None:
        answers = answers.filter(survey__csat_scale=scale)
        invitations = invitations.filter(survey__csat_scale=scale)
    column = DIMENSIONS[dimension]
    answer_fields = {"day": "day", "touchpoint": "touchpoint", "survey_id": "survey_id",
                     "value": column}
    if "day" in group:
        answers = answers.annotate(day=TruncDate("answered_at"))
        invitations = invitations.annotate(day=TruncDate("created_at"))
    names = [answer_fields[name] for name in group]
    for row in response_counts(answers, names):
        row = dict(row)
        if "value" in group:
            raw = row[column]
            row["value"] = "" if raw is None else str(raw)
        key = tuple(row[name] for name in group)
        result.setdefault(key, Counts()).add(row)
    if dimension == "all":
        invitation_fields = {"day": "day", "touchpoint": "survey__touchpoint",
                             "survey_id": "survey_id"}
        names = [invitation_fields[name] for name in group]
        for row in invitations.values(*names).annotate(invited=Count("id")).order_by():
            key = tuple(row[invitation_fields[name]] for name in group)
            result.setdefault(key, Counts()).add({"invited": row["invited"]})
    return result


def _total(collected: dict[tuple, Counts]) -> Counts:
    total = Counts()
    for counts in collected.values():
        total.add(counts.__dict__)
    return total


def nps_summary(*, start: date, end: date, survey_id: int | None = None) -> NpsSummary:
    """Return the NPS of the answers to NPS surveys (or one survey) from ``start`` to
    ``end`` inclusive, with counts, 95% margin of error and response rate."""
    collected = _collect(start=start, end=end, kind=Survey.Kind.NPS, survey_id=survey_id,
                         complete_through=rollup_complete_through())
    return nps_from_counts(_total(collected), start, end)


def csat_summary(*, start: date, end: date, survey_id: int | None = None,
                 scale: int | None = None) -> CsatSummary:
    """Return CSAT (mean and top-two-box share) from ``start`` to ``end`` inclusive.

    Scores on 1-5 and 1-10 are never mixed: give ``survey_id`` (its own scale) or
    ``scale`` (default 5) to read every CSAT survey on that scale.
    """
    if survey_id is not None:
        scale = Survey.objects.values_list("csat_scale", flat=True).get(pk=survey_id)
    scale = scale or 5
    collected = _collect(start=start, end=end, kind=Survey.Kind.CSAT, survey_id=survey_id,
                         scale=scale, complete_through=rollup_complete_through())
    return csat_from_counts(_total(collected), start, end, scale)


@dataclass
class TrendPoint:
    """One week or month of a trend: its first day, a label and the summary."""

    period_start: date
    label: str
    summary: NpsSummary | CsatSummary


def period_start(day: date, grain: str) -> date:
    """Return the Monday of the day's week or the first of its month."""
    if grain == "month":
        return day.replace(day=1)
    return day - timedelta(days=day.weekday())


def _next_period(first: date, grain: str) -> date:
    if grain == "month":
        return (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first + timedelta(days=7)


def _periods(start: date, end: date, grain: str) -> list[date]:
    periods, current = [], period_start(start, grain)
    while current <= end:
        periods.append(current)
        current = _next_period(current, grain)
    return periods


def _trend(*, start, end, grain, kind, survey_id, scale) -> list[TrendPoint]:
    if grain not in ("week", "month"):
        raise ValueError("grain must be 'week' or 'month'")
    collected = _collect(start=start, end=end, kind=kind, group=("day",),
                         survey_id=survey_id, scale=scale,
                         complete_through=rollup_complete_through())
    buckets: dict[date, Counts] = {p: Counts() for p in _periods(start, end, grain)}
    for (day,), counts in collected.items():
        buckets.setdefault(period_start(day, grain), Counts()).add(counts.__dict__)
    points = []
    for first, counts in sorted(buckets.items()):
        last = min(end, _next_period(first, grain) - timedelta(days=1))
        summary = (nps_from_counts(counts, max(first, start), last) if kind == Survey.Kind.NPS
                   else csat_from_counts(counts, max(first, start), last, scale or 5))
        label = first.strftime("%Y-%m") if grain == "month" else first.strftime("%d.%m.%Y")
        points.append(TrendPoint(period_start=first, label=label, summary=summary))
    return points


def nps_trend(*, start: date, end: date, grain: str = "week",
              survey_id: int | None = None) -> list[TrendPoint]:
    """Return the NPS per week (Monday first) or month between ``start`` and ``end``;
    every period is present, with ``nps`` None where nobody answered."""
    return _trend(start=start, end=end, grain=grain, kind=Survey.Kind.NPS,
                  survey_id=survey_id, scale=None)


def csat_trend(*, start: date, end: date, grain: str = "week", survey_id: int | None = None,
               scale: int | None = None) -> list[TrendPoint]:
    """Return CSAT per week or month (see :func:`csat_summary` for the scale)."""
    if survey_id is not None:
        scale = Survey.objects.values_list("csat_scale", flat=True).get(pk=survey_id)
    return _trend(start=start, end=end, grain=grain, kind=Survey.Kind.CSAT,
                  survey_id=survey_id, scale=scale or 5)


# ------------------------------------------------------------------ breakdowns

BREAKDOWNS = {
    "tier": _("Tier"), "rfm": _("RFM segment"), "store": _("Store"),
    "touchpoint": _("Touchpoint"),
}


@dataclass
class BreakdownRow:
    label: str
    summary: NpsSummary | CsatSummary


def _labels(dimension: str, values) -> dict[str, str]:
    values = [value for value in values if value]
    if dimension == "tier":
        from rewards.models import Tier

        return {str(pk): name for pk, name in Tier.objects.filter(
            pk__in=[int(v) for v in values if v.isdigit()]).values_list("id", "name")}
    if dimension == "store":
        return {str(pk): name for pk, name in Store.objects.filter(
            pk__in=[int(v) for v in values if v.isdigit()]).values_list("id", "name")}
    if dimension == "rfm":
        try:
            from campaigns.models import RfmSegment
        except ImportError:
            return {}
        return {value: str(RfmSegment(value).label) for value in values
                if value in RfmSegment.values}
    if dimension == "touchpoint":
        return {value: str(Touchpoint(value).label) for value in values
                if value in Touchpoint.values}
    return {}


def breakdown(*, start: date, end: date, dimension: str, kind: str = Survey.Kind.NPS,
              survey_id: int | None = None, scale: int | None = None) -> list[BreakdownRow]:
    """Return one summary per tier, RFM segment, store or touchpoint, most answers first.

    Answers without a tier, segment or store are one row, "none". Two queries: the
    counters and the labels.
    """
    if kind == Survey.Kind.CSAT and survey_id is not None:
        scale = Survey.objects.values_list("csat_scale", flat=True).get(pk=survey_id)
    through = rollup_complete_through()
    if dimension == "touchpoint":
        collected = _collect(start=start, end=end, kind=kind, group=("touchpoint",),
                             survey_id=survey_id, scale=scale, complete_through=through)
    else:
        collected = _collect(start=start, end=end, kind=kind, group=("value",),
                             dimension=dimension, survey_id=survey_id, scale=scale,
                             complete_through=through)
    labels = _labels(dimension, [key[0] for key in collected])
    rows = []
    for (value,), counts in collected.items():
        if not counts.responses:
            continue
        summary = (nps_from_counts(counts, start, end) if kind == Survey.Kind.NPS
                   else csat_from_counts(counts, start, end, scale or 5))
        label = labels.get(value) or (str(_("none")) if not value else value)
        rows.append(BreakdownRow(label=label, summary=summary))
    rows.sort(key=lambda row: (-row.summary.responses, row.label))
    return rows


# ------------------------------------------------------------------ before / after


@dataclass
class BeforeAfter:
    """The score in equal windows before and after a date, and whether the change is
    larger than the margin of error of the difference."""

    pivot: date
    days: int
    before: NpsSummary | CsatSummary
    after: NpsSummary | CsatSummary
    change: float | None
    margin_of_error: float | None
    significant: bool | None


def before_after(*, pivot: date, days: int, kind: str = Survey.Kind.NPS,
                 survey_id: int | None = None, scale: int | None = None) -> BeforeAfter:
    """Compare the ``days`` days before ``pivot`` with ``pivot`` and the ``days - 1``
    days after it.

    For NPS the score is compared, for CSAT the top-two-box share. The margin of the
    difference of two independent samples is sqrt(MoE_before² + MoE_after²); the
    change is *significant* when its size is larger than that margin.
    """
    if kind == Survey.Kind.NPS:
        def read(start, end):
            return nps_summary(start=start, end=end, survey_id=survey_id)
    else:
        def read(start, end):
            return csat_summary(start=start, end=end, survey_id=survey_id, scale=scale)
    before = read(pivot - timedelta(days=days), pivot - timedelta(days=1))
    after = read(pivot, pivot + timedelta(days=days - 1))
    score = "nps" if kind == Survey.Kind.NPS else "top_two_share"
    change = margin = significant = None
    if getattr(before, score) is not None and getattr(after, score) is not None:
        change = getattr(after, score) - getattr(before, score)
        margin = math.sqrt(before.margin_of_error ** 2 + after.margin_of_error ** 2)
        significant = abs(change) > margin
    return BeforeAfter(pivot=pivot, days=days, before=before, after=after, change=change,
                       margin_of_error=margin, significant=significant)


# ------------------------------------------------------------------ loyalty index


@dataclass
class Distribution:
    """A histogram of loyalty index values: ``bins`` of (low, high, count)."""

    count: int
    minimum: float | None
    maximum: float | None
    mean: float | None
    bins: list[tuple[float, float, int]] = field(default_factory=list)


def loyalty_distribution(*, survey_id: int, start: date | None = None,
                         end: date | None = None, bins: int = 10) -> Distribution:
    """Return the distribution of the survey's loyalty index: two queries (range, then
    one filtered count per bin), whatever the number of answers."""
    answers = Response.objects.filter(survey_id=survey_id, loyalty_index__isnull=False)
    if start and end:
        low, high = day_bounds(start, end)
        answers = answers.filter(answered_at__gte=low, answered_at__lt=high)
    from django.db.models import Avg

    stats = answers.aggregate(n=Count("id"), low=Min("loyalty_index"),
                              high=Max("loyalty_index"), mean=Avg("loyalty_index"))
    if not stats["n"]:
        return Distribution(count=0, minimum=None, maximum=None, mean=None)
    low, high = float(stats["low"]), float(stats["high"])
    width = (high - low) / bins if high > low else 1.0
    edges = [low + width * i for i in range(bins + 1)]
    counts = answers.aggregate(**{
        f"b{i}": Count("id", filter=Q(loyalty_index__gte=edges[i]) & (
            Q(loyalty_index__lte=edges[i + 1]) if i == bins - 1
            else Q(loyalty_index__lt=edges[i + 1])))
        for i in range(bins if high > low else 1)
    })
    result = [(edges[i], edges[i + 1], counts[f"b{i}"]) for i in range(len(counts))]
    return Distribution(count=stats["n"], minimum=low, maximum=high,
                        mean=float(stats["mean"]), bins=result)


# ------------------------------------------------------------------ comments


def sentiment_counts(*, survey_id: int, start: date, end: date) -> dict[str, int]:
    """Return the number of commented answers per sentiment (the override wins)."""
    low, high = day_bounds(start, end)
    effective = Case(
        When(~Q(sentiment_override=""), then=F("sentiment_override")),
        default=F("sentiment_auto"), output_field=CharField(),
    )
    rows = (Response.objects.filter(survey_id=survey_id, answered_at__gte=low,
                                    answered_at__lt=high).exclude(comment="")
            .annotate(label=effective).values("label").annotate(n=Count("id")).order_by())
    counts = {value: 0 for value in Sentiment.values}
    for row in rows:
        if row["label"] in counts:
            counts[row["label"]] += row["n"]
    return counts


def themes_top(*, survey_id: int | None, start: date, end: date, limit: int = 8):
    """Return [(theme code, label, count)] of the most frequent comment themes."""
    low, high = day_bounds(start, end)
    rows = ResponseTheme.objects.filter(answered_at__gte=low, answered_at__lt=high)
    if survey_id is not None:
        rows = rows.filter(survey_id_copy=survey_id)
    rows = rows.values("theme").annotate(n=Count("id")).order_by("-n", "theme")[:limit]
    return [(row["theme"], theme_label(row["theme"]), row["n"]) for row in rows]


def theme_label(code: str) -> str:
    """Return a theme's name in the active language."""
    return str(THEME_LABELS.get(code, code))


def comments_latest(*, survey_id: int, limit: int = 20):
    """Return the latest commented answers with their member (one query)."""
    return list(Response.objects.filter(survey_id=survey_id).exclude(comment="")
                .select_related("member").order_by("-answered_at", "-id")[:limit])


# ------------------------------------------------------------------ member page


def member_survey_story(*, member_id: int, limit: int = 10) -> dict:
    """Return the member's latest answers and follow-ups (two queries)."""
    responses = list(
        Response.objects.filter(member_id=member_id).select_related("survey", "follow_up")
        .order_by("-answered_at", "-id")[:limit]
    )
    follow_ups = list(
        FollowUp.objects.filter(member_id=member_id).select_related("response__survey", "owner")
        .order_by("-id")[:limit]
    )
    return {"responses": responses, "follow_ups": follow_ups}
