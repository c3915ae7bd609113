"""An analyst exports a filtered list in a real browser (headless Chromium).

Run with the rest (``bin/test.sh``) or alone with ``bin/test.sh -m browser``; each test
leaves a full-page screenshot in ``test-artifacts/``.
"""

import csv
import io
import re
from pathlib import Path

import pytest
from django.http import QueryDict
from playwright.sync_api import Page, expect

from members import exports
from members.models import ExportJob, Member
from members.tests.browser import log_in
from members.tests.factories import MemberFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Export files go to a throwaway directory, not the project's media."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def petrovs(db):
    """Blocked Petrovs (the rows wanted) among other Petrovs and other blocked members."""
    wanted = [
        MemberFactory(first_name="Ivan", last_name="Petrov", status=Member.Status.BLOCKED),
        MemberFactory(first_name="=HYPERLINK(\"http://x\",\"y\")", last_name="Petrova",
                      status=Member.Status.BLOCKED),
    ]
    MemberFactory(first_name="Oleg", last_name="Petrov")
    MemberFactory(first_name="Anna", last_name="Sidorova", status=Member.Status.BLOCKED)
    MemberFactory(first_name="Pyotr", last_name="Petrovsky", status=Member.Status.CLOSED)
    return wanted


def filter_blocked_petrovs(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/admin/members/member/")
    page.locator("#changelist-filter").get_by_role("link", name="Blocked").click()
    expect(page).to_have_url(re.compile(r"status__exact=blocked"))
    page.fill("#searchbar", "Petrov")
    page.press("#searchbar", "Enter")
    expect(page).to_have_url(re.compile(r"q=Petrov"))
    expect(page.locator("#result_list tbody tr")).to_have_count(2)


def test_analyst_exports_the_filtered_member_list_as_csv(
    page: Page, live_server, analyst_user, petrovs
):
    log_in(page, live_server.url, analyst_user.username)
    filter_blocked_petrovs(page, live_server.url)
    expect(page.locator("#export-csv")).to_have_text("Export CSV")
    page.screenshot(path=str(ARTIFACTS / "browser-export-list.png"), full_page=True)

    with page.expect_download() as download_info:
        page.click("#export-csv")
    download = download_info.value
    assert re.fullmatch(r"members-member-\d{8}-\d{4}\.csv", download.suggested_filename)
    text = Path(download.path()).read_text(encoding="utf-8-sig")

    header, *rows = list(csv.reader(io.StringIO(text, newline="")))
    assert header[0] == "Member key" and "E-mail" not in header and "Phone" not in header
    assert sorted(row[0] for row in rows) == sorted(
        exports.member_key(member.pk) for member in petrovs
    )
    status = header.index("Status")
    assert {row[status] for row in rows} == {"blocked"}
    job = ExportJob.objects.get()
    assert (job.user, job.rows_done) == (analyst_user, 2)
    assert QueryDict(job.query).dict() == {"status__exact": "blocked", "q": "Petrov"}


def test_a_large_export_runs_in_the_background_and_is_downloaded_from_its_page(
    page: Page, live_server, analyst_user, petrovs, settings
):
    settings.LOYALTY_EXPORT_STREAM_MAX_ROWS = 1
    log_in(page, live_server.url, analyst_user.username)
    filter_blocked_petrovs(page, live_server.url)
    page.click("#export-xlsx")

    # Without a broker the job runs at once: the page shows it done, with its file.
    expect(page).to_have_url(re.compile(r"/admin/members/exportjob/\d+/progress/$"))
    expect(page.locator("#export-status")).to_contain_text("Done")
    expect(page.locator("#export-rows")).to_have_text("2")
    page.screenshot(path=str(ARTIFACTS / "browser-export-progress.png"), full_page=True)
    with page.expect_download() as download_info:
        page.click("#export-download")
    assert download_info.value.suggested_filename.endswith(".xlsx")
