"""The dashboard pages: each builds its KPI cards and tables from the selectors.

Who may see which page is declared once, in :data:`PERMISSIONS`; the admin site's
``admin_view`` only checks that the user is staff. Each table downloads as CSV or
XLSX through :func:`export_view`, which builds the same dashboard and sends the table.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format, number_format
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from loyalty_admin.dashboards import charts, integrations
from loyalty_admin.dashboards import selectors as figures
from loyalty_admin.dashboards.forms import KPI_CHOICES, BeforeAfterForm, FilterForm
from loyalty_admin.dashboards.periods import month_first, months_add
from loyalty_admin.dashboards.rollups import rollup_today_refresh
from loyalty_admin.dashboards.tables import (
    AUTO,
    DECIMAL,
    INT,
    MONEY,
    PERCENT,
    TEXT,
    Col,
    DashboardTable,
    table_response,
)
from loyalty_admin.models import RollupRun
from members.models import PointsAdjustment, PointsEntry
from members.selectors import adjustments_pending, programme_settings_get

PROGRAMME = "loyalty_admin.view_programme_dashboards"
SUPPORT = "loyalty_admin.view_support_dashboard"
RECOMPUTE = "loyalty_admin.recompute_rollups"

# Every dashboard page and what it needs: any one of the permissions listed.
PERMISSIONS: dict[str, tuple[str, ...]] = {
    "overview": (PROGRAMME,),
    "points": (PROGRAMME,),
    "retention": (PROGRAMME,),
    "acquisition": (PROGRAMME,),
    "value": (PROGRAMME,),
    "feedback": (PROGRAMME,),
    "compare": (PROGRAMME,),
    "support": (SUPPORT,),
    "methods": (PROGRAMME, SUPPORT),
    "recompute": (RECOMPUTE,),
}

TITLES = {
    "overview": _("Programme health"),
    "points": _("Points"),
    "retention": _("Retention and cohorts"),
    "acquisition": _("Acquisition cost"),
    "value": _("Customer value"),
    "feedback": _("Feedback and campaigns"),
    "compare": _("Before / after"),
    "support": _("Support desk"),
    "methods": _("How we compute this"),
}
# The filters each page offers (the others do not change its numbers).
FILTERS = {
    "overview": ("period", "store", "tier", "churn"),
    "points": ("period", "tier"),
    "retention": ("period", "store", "tier", "churn"),
    "acquisition": ("period", "tier"),
    "value": (),
    "feedback": ("period",),
}


def allowed(user, name: str) -> bool:
    """Return whether ``user`` may open the dashboard page ``name``."""
    if not (user.is_active and user.is_staff):
        return False
    if name == "feedback" and not integrations.feedback_available():
        return False
    return any(user.has_perm(permission) for permission in PERMISSIONS[name])


def dashboards_for(user) -> list[tuple[str, Any]]:
    """Return the (name, title) of the pages ``user`` may open, in menu order."""
    return [(name, TITLES[name]) for name in TITLES if allowed(user, name)]


def home_for(user) -> str | None:
    """Return the name of the dashboard a user lands on, or None."""
    if allowed(user, "overview"):
        return "overview"
    if allowed(user, "support"):
        return "support"
    return None


def dashboard_page(name: str):
    """Wrap a page: staff login (the admin's), then the page's permissions."""

    def decorate(view):
        @functools.wraps(view)
        def checked(request, *args, **kwargs):
            if not allowed(request.user, name):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return admin.site.admin_view(checked)

    return decorate


# ------------------------------------------------------------------ formatting


def shown(value, kind: str) -> str:
    """Return a number as the page shows it, in the user's locale."""
    if value is None:
        return "—"
    if kind == TEXT:
        return str(value)
    if kind == AUTO:
        # Already rounded to its own kind: show the places it has.
        if isinstance(value, int):
            return number_format(value, force_grouping=True)
        places = max(0, -Decimal(value).as_tuple().exponent)
        return number_format(Decimal(value), decimal_pos=places, force_grouping=True)
    if isinstance(value, date):
        return date_format(value, "SHORT_DATE_FORMAT")
    # number_format cuts digits off: round first, as the downloads do.
    value = _rounded(value, kind)
    if kind == PERCENT:
        return f"{number_format(Decimal(value), decimal_pos=1, force_grouping=True)} %"
    if kind in (MONEY, DECIMAL):
        return number_format(Decimal(value), decimal_pos=2, force_grouping=True)
    return number_format(value, force_grouping=True)


def _rounded(value, kind: str):
    """Return the number a table and its download hold: money to 2 places, % to 1."""
    if value is None or kind in (TEXT, INT, AUTO):
        return value
    places = Decimal("0.1") if kind == PERCENT else Decimal("0.01")
    return Decimal(value).quantize(places, rounding=ROUND_HALF_UP)


@dataclass
class Card:
    label: Any
    now: Any
    before: Any
    kind: str = INT
    note: Any = ""
    # Whether a rise is good news (green) or bad news (red).
    higher_is_better: bool = True
    # Change as a difference ("+2.5 pts") rather than relative: percentages and scores.
    in_points: bool = False

    @property
    def now_text(self) -> str:
        return shown(self.now, self.kind)

    @property
    def before_text(self) -> str:
        return shown(self.before, self.kind)

    @property
    def absolute(self) -> bool:
        return self.in_points or self.kind == PERCENT

    @property
    def change(self):
        if self.absolute:
            if self.now is None or self.before is None:
                return None
            return Decimal(self.now) - Decimal(self.before)
        return figures.Pair(self.now, self.before).change

    @property
    def change_text(self) -> str:
        change = self.change
        if change is None:
            return ""
        sign = "+" if change > 0 else ""
        change = change.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
        unit = gettext("pts") if self.absolute else "%"
        return f"{sign}{number_format(change, decimal_pos=1)} {unit}"

    @property
    def tone(self) -> str:
        change = self.change
        if not change:
            return "flat"
        return "good" if (change > 0) == self.higher_is_better else "bad"


def card(label, pair: figures.Pair, kind: str = INT, **kwargs) -> Card:
    return Card(label, pair.now, pair.before, kind, **kwargs)


def _table(key, title, columns: list[Col], rows: list[list], **kwargs) -> DashboardTable:
    rounded = [[_rounded(v, c.kind) for v, c in zip(row, columns, strict=True)] for row in rows]
    # More than three columns do not fit beside a chart: the table goes below it.
    kwargs.setdefault("wide", len(columns) > 3)
    return DashboardTable(key=key, title=title, columns=columns, rows=rounded, **kwargs)


def _bucket_label(day: date, grain: str) -> str:
    if grain == "month":
        return date_format(day, "YEAR_MONTH_FORMAT")
    return date_format(day, "SHORT_DATE_FORMAT")


# ------------------------------------------------------------------ context


@dataclass
class Context:
    request: HttpRequest
    scope: figures.Scope
    stores: dict[int, str]
    tiers: dict[int, str]

    def tier_name(self, tier_id) -> str:
        return self.tiers.get(tier_id, gettext("No tier")) if tier_id else gettext("No tier")


# ------------------------------------------------------------------ dashboards


def build_overview(ctx: Context) -> dict:
    scope = ctx.scope
    sales = figures.sales_summary(scope)
    people = figures.members_summary(scope)
    cards = [
        card(_("Members"), people.total),
        card(_("New members"), people.new),
        card(_("Active members"), people.active,
             note=_("Bought, or spent points, in the period.")),
        card(_("Revenue from members"), sales.member_revenue_share, PERCENT),
        card(_("Participation"), sales.participation, PERCENT,
             note=_("Share of purchases made by members.")),
        card(_("Average order, members"), sales.member_aov, MONEY),
        card(_("Average order, non-members"), sales.other_aov, MONEY),
        card(_("Customer retention rate"), people.crr, PERCENT,
             note=_("Can exceed 100 % when lapsed customers come back.")),
        card(_("Repeat purchase rate"), people.repeat_rate, PERCENT),
        card(_("Purchase frequency"), people.frequency, DECIMAL,
             note=_("Purchases per active member.")),
        card(_("Churn rate"), people.churn, PERCENT, higher_is_better=False,
             note=_("No purchase in the last %(days)s days.") % {"days": scope.churn_days}),
        card(_("Revenue"), sales.revenue, MONEY),
    ]
    grain, trend = figures.sales_trend(scope)
    labels = [_bucket_label(row["bucket"], grain) for row in trend]
    trend_table = _table(
        "sales_trend", _("Sales over time"),
        [Col(_("period start"), TEXT), Col(_("purchases by members")),
         Col(_("revenue from members"), MONEY), Col(_("purchases by non-members")),
         Col(_("revenue from non-members"), MONEY)],
        [[row["bucket"].isoformat(), row["member_purchases"], row["member_revenue"],
          row["other_purchases"], row["other_revenue"]] for row in trend],
        chart=charts.line_chart(
            title=gettext("Revenue over time"), labels=labels,
            series=[(gettext("Members"), [r["member_revenue"] for r in trend]),
                    (gettext("Non-members"), [r["other_revenue"] for r in trend])],
        ),
    )
    by_tier = figures.aov_by_tier(scope)
    tier_rows = [
        [ctx.tier_name(row["tier_id"]) if row["is_member"] else gettext("Non-members"),
         row["purchases"], row["revenue"], row["aov"]]
        for row in by_tier
    ]
    aov_table = _table(
        "aov_by_tier", _("Average order value by tier"),
        [Col(_("tier"), TEXT), Col(_("purchases")), Col(_("revenue"), MONEY),
         Col(_("average order value"), MONEY)],
        tier_rows,
        chart=charts.bar_chart(title=gettext("Average order value by tier"),
                               labels=[r[0] for r in tier_rows], values=[r[3] for r in tier_rows]),
    )
    kpi_table = _kpi_table(cards, ctx)
    return {"cards": cards, "tables": [trend_table, aov_table, kpi_table]}


def _kpi_table(cards: list[Card], ctx: Context) -> DashboardTable:
    """The cards as a table: what the period and the period before hold."""
    scope = ctx.scope
    return _table(
        "kpis", _("Key figures"),
        [Col(_("figure"), TEXT),
         Col(_("%(first)s – %(last)s") % {"first": scope.period.first, "last": scope.period.last},
             AUTO),
         Col(_("%(first)s – %(last)s") % {"first": scope.previous.first,
                                           "last": scope.previous.last}, AUTO),
         Col(_("change"), AUTO), Col(_("unit of the change"), TEXT)],
        [[str(c.label), _rounded(c.now, c.kind), _rounded(c.before, c.kind),
          _rounded(c.change, PERCENT), gettext("points of %") if c.absolute else "%"]
         for c in cards],
    )


def build_points(ctx: Context) -> dict:
    scope = ctx.scope
    settings_row = programme_settings_get()
    points = figures.points_summary(scope, point_value=settings_row.point_value)
    cards = [
        card(_("Points issued"), points.issued),
        card(_("Points redeemed"), points.redeemed),
        card(_("Points expired"), points.expired, higher_is_better=False),
        card(_("Redemption rate"), points.redemption_rate, PERCENT),
        card(_("Breakage"), points.breakage, PERCENT, higher_is_better=False,
             note=_("Points expired as a share of points issued.")),
        card(_("Outstanding points"), points.balance, higher_is_better=False,
             note=_("At the end of the period.")),
        card(_("Points liability"), points.liability, MONEY, higher_is_better=False,
             note=_("Outstanding points × %(value)s per point.") % {
                 "value": shown(settings_row.point_value, DECIMAL)}),
    ]
    grain, trend = figures.points_trend(scope)
    trend_table = _table(
        "points_trend", _("Points over time"),
        [Col(_("period start"), TEXT), Col(_("issued")), Col(_("redeemed")), Col(_("expired"))],
        [[r["bucket"].isoformat(), r["issued"], r["redeemed"], r["expired"]] for r in trend],
        chart=charts.line_chart(
            title=gettext("Points over time"),
            labels=[_bucket_label(r["bucket"], grain) for r in trend],
            series=[(gettext("Issued"), [r["issued"] for r in trend]),
                    (gettext("Redeemed"), [r["redeemed"] for r in trend]),
                    (gettext("Expired"), [r["expired"] for r in trend])],
        ),
    )
    kinds = dict(PointsEntry.Kind.choices)
    kind_table = _table(
        "points_by_kind", _("Ledger movements by kind"),
        [Col(_("kind"), TEXT), Col(_("points added")), Col(_("points taken")),
         Col(_("ledger rows"))],
        [[str(kinds.get(r["kind"], r["kind"])), r["in_now"], r["out_now"], r["entries"]]
         for r in points.by_kind],
    )
    return {"cards": cards, "tables": [trend_table, kind_table, _kpi_table(cards, ctx)],
            "note": _("Points do not depend on the store filter.")}


def build_retention(ctx: Context) -> dict:
    scope = ctx.scope
    people = figures.members_summary(scope)
    cards = [
        card(_("Customers before (S)"), people.previous_buyers),
        card(_("Customers now (E)"), people.buyers),
        card(_("New customers (N)"), people.new_buyers),
        card(_("Customer retention rate"), people.crr, PERCENT,
             note=_("((E − N) / S) × 100; can exceed 100 % when lapsed customers return.")),
        card(_("Strict retention"), people.strict_retention, PERCENT,
             note=_("Customers of the period before who bought again: |S ∩ E| / |S|.")),
        card(_("Churn rate"), people.churn, PERCENT, higher_is_better=False,
             note=_("Members enrolled at least %(days)s days ago with no purchase in the last "
                    "%(days)s days.") % {"days": scope.churn_days}),
        card(_("Repeat purchase rate"), people.repeat_rate, PERCENT),
        card(_("Purchase frequency"), people.frequency, DECIMAL),
    ]
    months, triangle = figures.cohort_triangle(scope)
    width = len(months)
    rows, shades = [], []
    for row in triangle:
        shares = [figures.ratio(n, row["size"], percent=True) for n in row["active"]]
        rows.append([date_format(row["cohort"], "YEAR_MONTH_FORMAT"), row["size"], *shares,
                     *([None] * (width - len(shares)))])
        shades.append([None, None, *[charts.heat_colour(s, 100) for s in shares],
                       *([None] * (width - len(shares)))])
    cohort_table = _table(
        "cohorts", _("Monthly cohorts: share of members who bought, by months since enrolment"),
        [Col(_("enrolment month"), TEXT), Col(_("members")),
         *[Col(_("month %(n)s, %%") % {"n": k}, PERCENT) for k in range(width)]],
        rows, shades=shades, wide=True,
        note=_("Month 0 is the month of enrolment. Empty: that month has not come yet."),
    )
    return {"cards": cards, "tables": [cohort_table, _kpi_table(cards, ctx)]}


def build_acquisition(ctx: Context) -> dict:
    scope = ctx.scope
    first = months_add(month_first(scope.period.last), -23)
    months = figures.acquisition_months(first=first, last=scope.period.last,
                                        tier_id=scope.tier_id)
    in_period = [m for m in months if month_first(scope.period.first) <= m["month"]]
    before = [m for m in months if months_add(month_first(scope.previous.first), 0) <= m["month"]
              < month_first(scope.period.first)]
    now_w, before_w = figures.cac_window(in_period), figures.cac_window(before)
    cards = [
        card(_("Marketing spend"), figures.Pair(now_w["spend"], before_w["spend"]), MONEY,
             higher_is_better=False),
        card(_("New members (months with spend)"), figures.Pair(now_w["new"], before_w["new"])),
        card(_("Cost of acquiring a member"), figures.Pair(now_w["cac"], before_w["cac"]), MONEY,
             higher_is_better=False,
             note=_("Spend of the months in the period ÷ members who enrolled in them.")),
    ]
    table = _table(
        "cac_months", _("Cost of acquiring a member by month"),
        [Col(_("month"), TEXT), Col(_("marketing spend"), MONEY), Col(_("new members")),
         Col(_("cost per new member"), MONEY)],
        [[m["month"].strftime("%Y-%m"), m["spend"], m["new"], m["cac"]] for m in months],
        chart=charts.line_chart(
            title=gettext("Cost of acquiring a member by month"),
            labels=[m["month"].strftime("%Y-%m") for m in months],
            series=[(gettext("Cost per new member"), [m["cac"] for m in months])],
        ),
        note=_("Months without recorded spend have no cost. Managers record spend under "
               "Marketing spend, by hand or from a file."),
    )
    return {"cards": cards, "tables": [table, _kpi_table(cards, ctx)],
            "note": _("Whole months: the period's months against as many months before.")}


def build_value(ctx: Context) -> dict:
    computed_on, rows = figures.value_estimates()
    segments = integrations.segment_names()
    tables = []
    for group, title, name in (
        ("tier", _("Lifetime value by tier"), ctx.tier_name),
        ("segment", _("Lifetime value by RFM segment"), lambda k: segments.get(k, k or "—")),
        ("all", _("Lifetime value, all members"), lambda k: gettext("All members")),
    ):
        picked = [r for r in rows if r.group == group]
        if group == "segment" and not picked:
            continue
        body = [[name(int(r.key) if group == "tier" and r.key else r.key), r.active_members,
                 r.annual_revenue, r.retention and r.retention * 100, r.lifetime_years, r.clv]
                for r in picked]
        tables.append(_table(
            f"clv_{group}", title,
            [Col(_("group"), TEXT), Col(_("members who bought in 12 months")),
             Col(_("revenue per member per year"), MONEY), Col(_("yearly retention, %"), PERCENT),
             Col(_("expected lifetime, years"), DECIMAL), Col(_("lifetime value"), MONEY)],
            body,
            chart=charts.bar_chart(title=str(title), labels=[str(b[0]) for b in body],
                                   values=[b[5] for b in body]) if group != "all" else None,
        ))
    distribution = figures.tier_distribution()
    tier_rows = [[ctx.tier_name(r["tier_id"]), r["members"]] for r in distribution]
    tables.append(_table(
        "tiers", _("Members by tier now"), [Col(_("tier"), TEXT), Col(_("members"))], tier_rows,
        chart=charts.bar_chart(title=gettext("Members by tier now"),
                               labels=[r[0] for r in tier_rows], values=[r[1] for r in tier_rows]),
    ))
    grid = figures.rfm_grid()
    if grid:
        top = max((cell["members"] for cell in grid.values()), default=0)
        rows_, shades = [], []
        for recency in range(5, 0, -1):
            counts = [grid.get((recency, f), {}).get("members", 0) for f in range(1, 6)]
            rows_.append([f"R{recency}", *counts])
            shades.append([None, *[charts.heat_colour(c, top) for c in counts]])
        tables.append(_table(
            "rfm", _("RFM grid: members by recency (rows) and frequency (columns) score"),
            [Col(_("recency"), TEXT), *[Col(f"F{f}") for f in range(1, 6)]], rows_,
            shades=shades,
            note=_("5 is best: bought most recently, most often. Darker: more members."),
        ))
    note = _("Computed nightly; latest estimate of %(day)s.") % {
        "day": date_format(computed_on, "SHORT_DATE_FORMAT")} if computed_on else _(
        "No estimate yet: it is computed by the nightly roll-up.")
    return {"cards": [], "tables": tables, "note": note}


def build_feedback(ctx: Context) -> dict:
    scope = ctx.scope
    cards, tables = integrations.feedback_cards_and_tables(scope, card=card, table=_table)
    return {"cards": cards, "tables": tables}


BUILDERS = {
    "overview": build_overview, "points": build_points, "retention": build_retention,
    "acquisition": build_acquisition, "value": build_value, "feedback": build_feedback,
}


# ------------------------------------------------------------------ pages


def _context(request: HttpRequest) -> tuple[Context, FilterForm]:
    stores, tiers = figures.store_and_tier_names()
    form = FilterForm(request.GET or None, stores=stores, tiers=tiers)
    return Context(request, form.scope() if form.is_bound else FilterForm(
        None, stores=stores, tiers=tiers).scope(), stores, tiers), form


def _page(request, name: str, template: str, extra: dict) -> TemplateResponse:
    last_run = RollupRun.objects.exclude(trigger="live").filter(
        finished_at__isnull=False).order_by("-id").first()
    return TemplateResponse(request, template, {
        **admin.site.each_context(request),
        "title": TITLES[name],
        "dashboard": name,
        "dashboards": dashboards_for(request.user),
        "last_run": last_run,
        "can_recompute": allowed(request.user, "recompute"),
        **extra,
    })


def _filtered_page(request: HttpRequest, name: str) -> TemplateResponse:
    rollup_today_refresh()
    ctx, form = _context(request)
    built = BUILDERS[name](ctx)
    query = request.GET.urlencode()
    for table in built["tables"]:
        base = reverse("dashboards:export", args=[name, table.key])
        table.extra["csv"] = f"{base}?{query}&format=csv" if query else f"{base}?format=csv"
        table.extra["xlsx"] = f"{base}?{query}&format=xlsx" if query else f"{base}?format=xlsx"
        table.extra["headers"] = table.headers()
        table.extra["body"] = [
            [(shown(value, kind), kind, shade) for value, kind, shade in row]
            for row in table.cells()
        ]
    return _page(request, name, "admin/dashboards/dashboard.html", {
        "form": form, "scope": ctx.scope, "built": built, "filters": FILTERS[name],
        "today_included": ctx.scope.period.contains(timezone.localdate()),
        "store_name": ctx.stores.get(ctx.scope.store_id),
        "tier_name": ctx.tiers.get(ctx.scope.tier_id),
    })


def index_view(request: HttpRequest) -> HttpResponse:
    home = home_for(request.user)
    if home is None:
        raise PermissionDenied
    return HttpResponseRedirect(reverse(f"dashboards:{home}"))


def _named(name: str):
    @dashboard_page(name)
    def view(request):
        return _filtered_page(request, name)

    view.__name__ = f"{name}_view"
    return view


overview_view = _named("overview")
points_view = _named("points")
retention_view = _named("retention")
acquisition_view = _named("acquisition")
value_view = _named("value")
feedback_view = _named("feedback")


def export_view(request: HttpRequest, name: str, table_key: str) -> HttpResponse:
    """Send one table of a dashboard as CSV or XLSX, as filtered on screen."""
    if name not in BUILDERS or not allowed(request.user, name):
        raise PermissionDenied
    file_format = request.GET.get("format", "csv")
    if file_format not in ("csv", "xlsx"):
        raise Http404
    rollup_today_refresh()
    ctx, _form = _context(request)
    built = BUILDERS[name](ctx) if name != "compare" else None
    table = next((t for t in built["tables"] if t.key == table_key), None)
    if table is None:
        raise Http404
    filename = f"{name}-{table_key}-{ctx.scope.period.slug()}"
    return table_response(table, file_format=file_format, filename=filename)


export_view = admin.site.admin_view(export_view)


@dashboard_page("compare")
def compare_view(request: HttpRequest) -> TemplateResponse:
    """Before / after: equal windows on both sides of a day, for one KPI and all of them."""
    rollup_today_refresh()
    form = BeforeAfterForm(request.GET or None)
    after, before, kpi, window = form.choice()
    scope = figures.Scope(period=after, previous=before)
    stores, tiers = figures.store_and_tier_names()
    ctx = Context(request, scope, stores, tiers)
    cards = (build_overview(ctx)["cards"] + build_points(ctx)["cards"]
             + build_acquisition(ctx)["cards"])
    labels = dict(KPI_CHOICES)
    chosen = next((c for c in cards if str(c.label) == str(_kpi_card_label(kpi))), None)
    return _page(request, "compare", "admin/dashboards/compare.html", {
        "form": form, "after": after, "before": before, "window": window,
        "chosen": chosen, "chosen_label": labels.get(kpi), "cards": cards,
        "incomplete": after.last > timezone.localdate(),
    })


def _kpi_card_label(kpi: str):
    return {
        "revenue": _("Revenue"), "purchases": _("Purchases"),
        "member_aov": _("Average order, members"), "other_aov": _("Average order, non-members"),
        "participation": _("Participation"), "new": _("New members"),
        "active": _("Active members"), "crr": _("Customer retention rate"),
        "repeat_rate": _("Repeat purchase rate"), "frequency": _("Purchase frequency"),
        "issued": _("Points issued"), "redeemed": _("Points redeemed"),
        "redemption_rate": _("Redemption rate"), "cac": _("Cost of acquiring a member"),
    }.get(kpi, _("Revenue"))


@dashboard_page("support")
def support_view(request: HttpRequest) -> TemplateResponse:
    """Support's own page: approvals waiting, recent adjustments, survey follow-ups."""
    pending = list(adjustments_pending()[:25])
    recent = list(
        PointsAdjustment.objects.exclude(status=PointsAdjustment.Status.PENDING)
        .select_related("member", "requested_by", "decided_by").order_by("-id")[:25]
    )
    follow_ups = integrations.follow_ups(request.user)
    return _page(request, "support", "admin/dashboards/support.html", {
        "pending": pending, "recent": recent, "follow_ups": follow_ups,
        "can_approve": request.user.has_perm("members.approve_adjustment"),
    })


@dashboard_page("methods")
def methods_view(request: HttpRequest) -> TemplateResponse:
    """The "how we compute this" page: every formula in words and symbols."""
    from loyalty_admin.dashboards.rollups import LIVE_MAX_AGE_SECONDS

    return _page(request, "methods", "admin/dashboards/methods.html", {
        "churn_days": figures.DEFAULT_CHURN_DAYS, "live_seconds": LIVE_MAX_AGE_SECONDS,
        "lifetime_cap": figures.LIFETIME_CAP_YEARS,
    })


@dashboard_page("recompute")
def recompute_view(request: HttpRequest) -> HttpResponse:
    """Recompute the roll-ups of a date range (a form; the work runs as a task)."""
    from loyalty_admin.dashboards.forms import forms
    from loyalty_admin.tasks import rollups_recompute

    class RangeForm(forms.Form):
        first = forms.DateField(label=_("From"), widget=forms.DateInput(attrs={"type": "date"}))
        last = forms.DateField(label=_("To"), widget=forms.DateInput(attrs={"type": "date"}))

        def clean(self):
            data = super().clean()
            first, last = data.get("first"), data.get("last")
            if first and last and first > last:
                raise forms.ValidationError(gettext("The first day must not be after the last."))
            if last and last > timezone.localdate():
                raise forms.ValidationError(gettext("The last day cannot be after today."))
            if first and last and (last - first).days > 3 * 366:
                raise forms.ValidationError(gettext(
                    "Recompute at most three years at a time; the full rebuild is the "
                    "rollups_rebuild command."))
            return data

    today = timezone.localdate()
    if request.method == "POST":
        form = RangeForm(request.POST)
        if form.is_valid():
            first, last = form.cleaned_data["first"], form.cleaned_data["last"]
            transaction.on_commit(functools.partial(
                rollups_recompute.delay, first.isoformat(), last.isoformat(), request.user.pk
            ))
            messages.success(request, gettext(
                "The roll-ups of %(first)s to %(last)s are being recomputed; the "
                "dashboards show the new numbers when it is done."
            ) % {"first": date_format(first, "SHORT_DATE_FORMAT"),
                 "last": date_format(last, "SHORT_DATE_FORMAT")})
            return HttpResponseRedirect(reverse("dashboards:recompute"))
    else:
        form = RangeForm(initial={"first": today - timedelta(days=7), "last": today})
    runs = list(RollupRun.objects.select_related("requested_by").order_by("-id")[:15])
    return _page(request, "overview", "admin/dashboards/recompute.html", {
        "form": form, "runs": runs, "title": gettext("Recompute the dashboards"),
    })



