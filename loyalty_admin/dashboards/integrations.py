"""What the dashboards read from the apps below them: surveys (NPS, CSAT, follow-ups) and
campaigns (RFM segments, results against the control group).

Each function looks its source up when called and returns nothing when that app does
not provide it, so a dashboard leaves the section out instead of failing.
"""

from __future__ import annotations

from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from loyalty_admin.dashboards import charts
from loyalty_admin.dashboards.tables import DECIMAL, INT, MONEY, PERCENT, TEXT, Col

# How many finished or running campaigns the feedback page compares with their control.
CAMPAIGNS_SHOWN = 5


def _surveys():
    try:
        from surveys import selectors
    except ImportError:
        return None
    needed = ("nps_summary", "nps_trend", "csat_summary", "csat_trend")
    return selectors if all(hasattr(selectors, name) for name in needed) else None


def _campaign_results():
    """Return the campaign model and a function giving a campaign's kept results and when
    they were computed (computed and kept at once when nothing is kept yet)."""
    try:
        from campaigns.models import Campaign
        from campaigns.selectors import campaign_results_stored
        from campaigns.services import campaign_results_store
    except ImportError:
        return None, None

    def results(campaign):
        stored = campaign_results_stored(campaign=campaign)
        if stored is None:
            # Kept every 15 minutes by campaigns.tasks.campaign_results_refresh; only a
            # campaign that started since is computed here, once.
            campaign.result_snapshot = campaign_results_store(campaign_id=campaign.id)
            stored = campaign_results_stored(campaign=campaign)
        return stored

    return Campaign, results


def feedback_available() -> bool:
    """Return whether there is anything for the feedback page to show."""
    return _surveys() is not None or _campaign_results()[0] is not None


def segment_names() -> dict[str, str]:
    """Return the RFM segments' names by code (empty without the campaigns app)."""
    try:
        from campaigns.models import RfmSegment
    except ImportError:
        return {}
    return {code: str(label) for code, label in RfmSegment.choices}


def _float_pair(now, before):
    from decimal import Decimal

    from loyalty_admin.dashboards.selectors import Pair

    def as_decimal(value):
        return None if value is None else Decimal(str(round(value, 2)))

    return Pair(as_decimal(now), as_decimal(before))


def feedback_cards_and_tables(scope, *, card, table) -> tuple[list, list]:
    """Return the NPS and CSAT cards and trends, and campaign results against control."""
    cards, tables = [], []
    surveys = _surveys()
    if surveys is not None:
        now, before = scope.period, scope.previous
        nps = surveys.nps_summary(start=now.first, end=now.last)
        nps_before = surveys.nps_summary(start=before.first, end=before.last)
        csat = surveys.csat_summary(start=now.first, end=now.last)
        csat_before = surveys.csat_summary(start=before.first, end=before.last)
        cards += [
            card(_("NPS"), _float_pair(nps.nps, nps_before.nps), DECIMAL, in_points=True,
                 note=_("%% promoters − %% detractors, from %(n)s answers.") % {
                     "n": nps.responses}),
            card(_("CSAT, mean score"), _float_pair(csat.mean, csat_before.mean), DECIMAL,
                 in_points=True,
                 note=_("On a scale of 1 to %(scale)s.") % {"scale": csat.scale}),
            card(_("CSAT, satisfied share"),
                 _float_pair(csat.top_two_share, csat_before.top_two_share), PERCENT,
                 note=_("Answers in the two highest boxes.")),
        ]
        grain = "week" if now.days <= 120 else "month"
        nps_points = surveys.nps_trend(start=now.first, end=now.last, grain=grain)
        csat_points = {p.period_start: p for p in
                       surveys.csat_trend(start=now.first, end=now.last, grain=grain)}
        rows = []
        for point in nps_points:
            other = csat_points.get(point.period_start)
            rows.append([
                point.period_start.isoformat(), point.summary.responses,
                _round(point.summary.nps),
                other.summary.responses if other else 0,
                _round(other.summary.mean) if other else None,
            ])
        labels = [date_format(p.period_start, "SHORT_DATE_FORMAT") for p in nps_points]
        tables.append(table(
            "nps_trend", _("NPS and CSAT over time"),
            [Col(_("period start"), TEXT), Col(_("NPS answers"), INT), Col(_("NPS"), DECIMAL),
             Col(_("CSAT answers"), INT), Col(_("CSAT mean"), DECIMAL)],
            rows,
            chart=charts.line_chart(
                title=gettext("NPS over time"), labels=labels,
                series=[(gettext("NPS"), [None if r[2] is None else max(r[2], 0)
                                          for r in rows])],
            ),
            note=_("Weeks start on Monday. The chart shows NPS from 0 up; the table has "
                   "negative values too. No point: nobody answered. Store and tier filters "
                   "do not apply to survey answers here."),
        ))
    campaign_model, results = _campaign_results()
    if campaign_model is not None:
        statuses = (campaign_model.Status.RUNNING, campaign_model.Status.FINISHED)
        campaigns = list(
            campaign_model.objects.filter(status__in=statuses).prefetch_related("variants")
            .select_related("result_snapshot").order_by("-launched_at", "-id")[:CAMPAIGNS_SHOWN]
        )
        rows = []
        oldest = None
        for campaign in campaigns:
            outcome, computed_at = results(campaign)
            oldest = computed_at if oldest is None else min(oldest, computed_at)
            for group in [*outcome.groups, *([outcome.control] if outcome.control else [])]:
                test = getattr(group, "test", None)
                rows.append([
                    campaign.name, group.label, group.recipients, group.converted,
                    round(group.conversion_rate * 100, 1), group.revenue,
                    group.revenue_per_recipient,
                    None if test is None else round(test.lift * 100, 1),
                    gettext("yes") if test is not None and test.significant else
                    ("" if group.is_control else gettext("no")),
                ])
        if rows:
            tables.append(table(
                "campaigns", _("Campaign results against the control group"),
                [Col(_("campaign"), TEXT), Col(_("group"), TEXT), Col(_("recipients")),
                 Col(_("bought")), Col(_("conversion, %"), PERCENT), Col(_("revenue"), MONEY),
                 Col(_("revenue per recipient"), MONEY), Col(_("lift, points"), PERCENT),
                 Col(_("significant at 5 %"), TEXT)],
                rows,
                chart=charts.bar_chart(
                    title=gettext("Conversion by group, %"),
                    labels=[f"{r[0][:12]} · {r[1]}" for r in rows], values=[r[4] for r in rows],
                ),
                note=_("The %(n)s latest running or finished campaigns. Conversion: bought "
                       "within the campaign's attribution window. Figures as of %(time)s, "
                       "computed again every 15 minutes while they can change.") % {
                    "n": CAMPAIGNS_SHOWN,
                    "time": date_format(timezone.localtime(oldest), "SHORT_DATETIME_FORMAT"),
                },
            ))
    return cards, tables


def _round(value):
    return None if value is None else round(value, 1)


def follow_ups(user) -> list | None:
    """Return the open survey follow-ups due first (None without the surveys app)."""
    try:
        from surveys.models import FollowUp
    except ImportError:
        return None
    if not user.has_perm("surveys.view_followup"):
        return None
    return list(
        FollowUp.objects.exclude(status=FollowUp.Status.RESOLVED)
        .select_related("member", "owner").order_by("due_date", "id")[:25]
    )
