"""The dashboard pages: who sees what, the downloads, and a fixed number of queries."""

import csv
import io
from datetime import date, timedelta
from decimal import Decimal

import openpyxl
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from loyalty_admin.dashboards import rollups
from loyalty_admin.models import MarketingSpend
from loyalty_admin.tests.dashboard_data import buy, worked_example
from members.roles import ANALYST, MARKETING_MANAGER, OPERATIONS, SUPPORT
from members.selectors import programme_settings_get
from members.tests.factories import MemberFactory, StoreFactory
from rewards.models import MemberTier, Tier

pytestmark = pytest.mark.django_db

PROGRAMME_PAGES = ["overview", "points", "retention", "acquisition", "value", "compare"]
ALL_PAGES = [*PROGRAMME_PAGES, "support", "methods", "recompute"]


def url(name, **query):
    base = reverse(f"dashboards:{name}")
    return base + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


@pytest.fixture
def data():
    example = worked_example()
    rollups.rollup_rebuild()
    return example


# ------------------------------------------------------------------ roles


@pytest.mark.parametrize("role", [ANALYST, MARKETING_MANAGER])
def test_analyst_and_manager_see_every_programme_dashboard(client, role_user, data, role):
    client.force_login(role_user(role))
    for name in PROGRAMME_PAGES + ["methods"]:
        response = client.get(url(name))
        assert response.status_code == 200, name
    overview = client.get(url("overview")).content.decode()
    assert "Customer retention rate" in overview and "<svg" in overview
    # The menu lists the dashboards; Support's desk is not one of them.
    assert reverse("dashboards:support") not in overview


def test_support_sees_its_own_dashboard_only(client, support_user, data):
    client.force_login(support_user)
    for name in PROGRAMME_PAGES:
        assert client.get(url(name)).status_code == 403, name
    response = client.get(url("support"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "waiting for approval" in page and "Recent adjustments" in page
    assert client.get(url("methods")).status_code == 200
    assert client.get(reverse("dashboards:index")).url == reverse("dashboards:support")


def test_index_sends_each_role_to_its_dashboard(client, role_user, data):
    client.force_login(role_user(ANALYST))
    assert client.get(reverse("dashboards:index")).url == reverse("dashboards:overview")


def test_staff_without_a_role_and_operations_get_403(client, role_user, data):
    for role in (None, OPERATIONS):
        client.force_login(role_user(role, username=f"u-{role}"))
        for name in ALL_PAGES:
            assert client.get(url(name)).status_code == 403, (role, name)
        export = reverse("dashboards:export", args=["overview", "kpis"])
        assert client.get(export).status_code == 403


def test_nobody_without_login_sees_anything(client, data):
    for name in ALL_PAGES:
        response = client.get(url(name))
        assert response.status_code == 302 and "/login/" in response.url, name
    response = client.get(reverse("dashboards:export", args=["overview", "kpis"]) + "?format=csv")
    assert response.status_code == 302 and "/login/" in response.url


def test_only_managers_recompute(client, role_user, data):
    client.force_login(role_user(ANALYST))
    assert client.post(url("recompute"), {"first": "2025-01-01", "last": "2025-01-31"}
                       ).status_code == 403
    client.force_login(role_user(MARKETING_MANAGER))
    response = client.post(url("recompute"), {"first": "2025-01-31", "last": "2025-01-01"})
    assert "The first day must not be after the last." in response.content.decode()
    response = client.post(url("recompute"), {"first": "2025-01-01", "last": "2025-01-31"})
    assert response.status_code == 302


def test_home_page_keeps_find_a_member_and_links_the_dashboards(client, role_user, data):
    client.force_login(role_user(SUPPORT))
    page = client.get(reverse("admin:index")).content.decode()
    assert "Find a member" in page
    assert reverse("dashboards:support") in page
    client.force_login(role_user(ANALYST))
    page = client.get(reverse("admin:index")).content.decode()
    assert reverse("dashboards:overview") in page


# ------------------------------------------------------------------ filters


def test_custom_period_and_bad_input(client, role_user, data):
    client.force_login(role_user(ANALYST))
    page = client.get(url("overview", preset="custom", first="2025-01-01", last="2025-01-31"))
    text = page.content.decode()
    assert "compared with" in text and page.context["scope"].period.first == date(2025, 1, 1)
    wrong = client.get(url("overview", preset="custom", first="2025-02-01", last="2025-01-01"))
    assert "The first day must not be after the last day." in wrong.content.decode()
    future = (timezone.localdate() + timedelta(days=3)).isoformat()
    wrong = client.get(url("overview", preset="custom", first="2025-01-01", last=future))
    assert "The last day cannot be after today." in wrong.content.decode()
    assert client.get(url("overview", store="abc", tier="x")).status_code == 200


# ------------------------------------------------------------------ exports


def test_each_table_downloads_as_csv_and_xlsx_with_the_numbers_on_screen(client, role_user,
                                                                         data):
    client.force_login(role_user(ANALYST))
    query = {"preset": "custom", "first": "2025-01-01", "last": "2025-01-31"}
    page = client.get(url("overview", **query))
    for table in page.context["built"]["tables"]:
        export = reverse("dashboards:export", args=["overview", table.key])
        response = client.get(export, {**query, "format": "csv"})
        assert response.status_code == 200
        assert (f'filename="overview-{table.key}-2025-01-01_2025-01-31.csv"'
                in response["Content-Disposition"])
        rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        assert rows[0] == table.headers()
        assert len(rows) == len(table.rows) + 1
        response = client.get(export, {**query, "format": "xlsx"})
        sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
        assert [cell.value for cell in sheet[1]] == table.headers()
        assert sheet.max_row == len(table.rows) + 1
    kpis = client.get(reverse("dashboards:export", args=["overview", "kpis"]),
                      {**query, "format": "xlsx"})
    sheet = openpyxl.load_workbook(io.BytesIO(kpis.content)).active
    values = {row[0]: row[1] for row in sheet.iter_rows(min_row=2, values_only=True)}
    # Numbers stay numbers: the worked example's January.
    assert values["Average order, members"] == 600
    assert values["Customer retention rate"] == 150


def test_exports_neutralise_formulas_and_speak_the_users_language(client, role_user, data):
    tier = Tier.objects.create(name="=HYPERLINK(\"http://x\",\"y\")", rank=60)
    MemberTier.objects.create(member=data["A"], tier=tier)
    rollups.rollup_rebuild()
    client.force_login(role_user(ANALYST))
    query = {"preset": "custom", "first": "2025-01-01", "last": "2025-01-31"}
    export = reverse("dashboards:export", args=["overview", "aov_by_tier"])
    text = client.get(export, {**query, "format": "csv"}).content.decode("utf-8-sig")
    assert "'=HYPERLINK" in text
    sheet = openpyxl.load_workbook(io.BytesIO(
        client.get(export, {**query, "format": "xlsx"}).content)).active
    names = [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert "'=HYPERLINK(\"http://x\",\"y\")" in names
    client.cookies["django_language"] = "ru"
    russian = client.get(export, {**query, "format": "csv"}, HTTP_ACCEPT_LANGUAGE="ru")
    header = russian.content.decode("utf-8-sig").splitlines()[0]
    assert header != "Tier,Purchases,Revenue,Average order value"


def test_unknown_table_or_format_is_not_found(client, role_user, data):
    client.force_login(role_user(ANALYST))
    assert client.get(reverse("dashboards:export", args=["overview", "nope"])).status_code == 404
    assert client.get(reverse("dashboards:export", args=["overview", "kpis"]),
                      {"format": "pdf"}).status_code == 404
    assert client.get(reverse("dashboards:export", args=["support", "x"])).status_code == 403


# ------------------------------------------------------------------ queries


def _queries(client, address) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(address).status_code == 200
    return len(captured.captured_queries)


def test_each_dashboard_runs_a_fixed_number_of_queries(client, role_user, data, monkeypatch):
    # Today's live refresh (at most once a minute) is counted apart: keep it out here.
    monkeypatch.setattr(rollups, "LIVE_MAX_AGE_SECONDS", 3600)
    programme_settings_get()
    client.force_login(role_user(MARKETING_MANAGER))
    pages = [url(name) for name in PROGRAMME_PAGES] + [url("overview", preset="last_365")]
    small = {page: _queries(client, page) for page in pages}
    # Ten times the members and purchases, other stores, tiers and marketing spend.
    store = StoreFactory(code="MORE")
    tier = Tier.objects.create(name="More", rank=70)
    today = timezone.localdate()
    for number in range(30):
        member = MemberFactory(enrolled_at=timezone.now() - timedelta(days=number * 10))
        MemberTier.objects.create(member=member, tier=tier)
        for k in range(3):
            buy(store, member, today - timedelta(days=number + k), "100", f"M{number}-{k}")
    MarketingSpend.objects.create(month=today.replace(day=1), amount=Decimal("1000"))
    rollups.rollup_rebuild()
    large = {page: _queries(client, page) for page in pages}
    assert large == small
    assert max(large.values()) <= 25


def test_support_dashboard_runs_a_fixed_number_of_queries(client, support_user, data):
    from members.services import points_adjust

    client.force_login(support_user)
    first = _queries(client, url("support"))
    for member in MemberFactory.create_batch(5):
        points_adjust(member_id=member.pk, amount=5000, reason="Big goodwill",
                      actor=support_user, idempotency_key=f"adj:{member.pk}")
    assert _queries(client, url("support")) == first


def test_the_rfm_grid_is_kept_per_scoring_run():
    """The grid is counted once per RFM scoring run: a new run gives the new scores."""
    from campaigns.models import MemberRfm, RfmRun
    from loyalty_admin.dashboards import selectors as figures

    def score(member, recency):
        MemberRfm.objects.create(
            member=member, recency_score=recency, frequency_score=2, monetary_score=3,
            segment="loyal", recency_days=5, frequency=2, monetary=Decimal("10"),
            computed_on=timezone.localdate())

    first, second = MemberFactory(), MemberFactory()
    score(first, 5)
    RfmRun.objects.create(computed_on=timezone.localdate(), window_days=365, members_scored=1)
    assert figures.rfm_grid()[5, 2]["members"] == 1
    score(second, 5)
    # Scores change only with a run: the same run reads the grid it counted.
    with CaptureQueriesContext(connection) as captured:
        assert figures.rfm_grid()[5, 2]["members"] == 1
    assert len(captured.captured_queries) == 1
    RfmRun.objects.create(computed_on=timezone.localdate(), window_days=365, members_scored=2)
    assert figures.rfm_grid()[5, 2]["members"] == 2


def test_feedback_page_shows_each_campaigns_kept_results(client, role_user, data):
    """Comparing a campaign with its control takes seconds at scale: the page reads the
    figures campaigns.tasks.campaign_results_refresh keeps, computing them only once for
    a campaign that has none yet."""
    from campaigns.models import Campaign, CampaignResultSnapshot
    from campaigns.tests.factories import campaign_make

    campaign = campaign_make(created_by=role_user(MARKETING_MANAGER), name="Spring news",
                             status=Campaign.Status.FINISHED, launched_at=timezone.now())
    client.force_login(role_user(ANALYST))
    first = client.get(url("feedback"))
    assert first.status_code == 200
    snapshot = CampaignResultSnapshot.objects.get(campaign=campaign)
    # What the page shows next time is what is kept, as of when it was computed.
    snapshot.rows = [[None, False, 1234, 1000, 321, 400, "56789.00", 0]]
    snapshot.save()
    second = client.get(url("feedback")).content.decode()
    assert "Spring news" in second and "1,234" in second and "321" in second
    assert "Figures as of" in second
