"""Each dashboard in a real browser (headless Chromium), with its charts; screenshots
are kept in ``test-artifacts/``."""

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from loyalty_admin.dashboards import rollups
from loyalty_admin.dashboards.services import marketing_spend_save
from loyalty_admin.tests.dashboard_data import worked_example
from members.roles import ANALYST, SUPPORT
from members.tests.browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PAGES = [
    ("overview", "Programme health"), ("points", "Points"),
    ("retention", "Retention and cohorts"), ("acquisition", "Acquisition cost"),
    ("value", "Customer value"), ("before-after", "Before / after"),
    ("how-we-compute", "How we compute this"),
]


@pytest.fixture
def dashboard_roles(roles_present):
    """The role groups with every app's grants, the dashboards' included (the root fixture)."""


@pytest.fixture
def programme(db):
    from datetime import date
    from decimal import Decimal

    data = worked_example()
    marketing_spend_save(month=date(2025, 1, 1), amount=Decimal("1500"), channel="Ads")
    rollups.rollup_rebuild()
    return data


def test_an_analyst_opens_every_dashboard_with_its_charts(
    page: Page, live_server, role_user, dashboard_roles, programme,
):
    ARTIFACTS.mkdir(exist_ok=True)
    role_user(ANALYST, "analyst-browser")
    log_in(page, live_server.url, "analyst-browser")
    page.set_viewport_size({"width": 1400, "height": 1000})
    query = "?preset=custom&first=2025-01-01&last=2025-01-31"
    for slug, title in PAGES:
        page.goto(f"{live_server.url}/admin/dashboards/{slug}/{query}")
        expect(page.locator("h1.dashboard-title")).to_have_text(title)
        if slug in ("overview", "points", "acquisition", "value"):
            expect(page.locator("svg.chart").first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{slug}.png"), full_page=True)
    page.goto(f"{live_server.url}/admin/dashboards/overview/{query}")
    cards = page.locator(".kpi-card")
    expect(cards.filter(has_text="Customer retention rate")).to_contain_text("150.0 %")
    expect(cards.filter(has_text="Average order, members")).to_contain_text("600.00")
    # Choosing "Custom dates" shows the date fields; a preset hides them.
    page.select_option("select[name=preset]", "last_30")
    expect(page.locator(".custom-dates").first).to_be_hidden()
    with page.expect_download() as download:
        page.locator("#table-kpis a[data-format=csv]").click()
    assert download.value.suggested_filename.startswith("overview-kpis-")
    page.emulate_media(media="print")
    page.goto(f"{live_server.url}/admin/dashboards/retention/{query}")
    expect(page.locator(".dashboard-tabs")).to_be_hidden()
    page.screenshot(path=str(ARTIFACTS / "dashboard-retention-print.png"), full_page=True)


def test_support_lands_on_its_desk(page: Page, live_server, role_user, dashboard_roles,
                                   programme):
    role_user(SUPPORT, "support-browser")
    log_in(page, live_server.url, "support-browser")
    page.goto(f"{live_server.url}/admin/dashboards/")
    expect(page.locator("h1.dashboard-title")).to_have_text("Support desk")
    expect(page.locator("#pending-approvals")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "dashboard-support.png"), full_page=True)
