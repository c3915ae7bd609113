"""Exports of the admin lists: as filtered on screen, safe to open, pseudonymised, logged.

Through the real export URLs with the Django test client on PostgreSQL; files are read
back with the csv module and openpyxl, as a spreadsheet would read them.
"""

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from members import exports
from members.models import ExportJob, Member, PointsEntry
from members.roles import ANALYST, MARKETING_MANAGER, SUPPORT
from members.services import points_post
from members.tests.factories import MemberFactory, StoreFactory, points_give

pytestmark = pytest.mark.django_db

ADMIN_LOGIN = reverse("admin:login")
MEMBER_EXPORT = reverse("admin:members_member_export")
LEDGER_EXPORT = reverse("admin:members_pointsentry_export")

FORMULAS = [
    '=HYPERLINK("http://x","y")', "==1+1", "+1", "-1+1", "@SUM(1)", "\t=1+1", "\r=1+1",
]
PERSONAL_HEADERS = {"ID", "Card number", "First name", "Last name", "E-mail", "Phone",
                    "Birth date"}


# ------------------------------------------------------------------ helpers


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Export files go to a throwaway directory, not the project's media."""
    settings.MEDIA_ROOT = tmp_path / "media"


def body(response) -> bytes:
    """Return the whole body of a streamed or plain response."""
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def csv_table(response) -> list[list[str]]:
    """Return the CSV as a spreadsheet would read it: header row first."""
    assert response["Content-Type"].startswith("text/csv")
    text = body(response).decode("utf-8")
    assert text.startswith("\ufeff"), "a byte-order mark so that Excel reads UTF-8"
    return list(csv.reader(io.StringIO(text[1:], newline="")))


def as_dicts(table: list[list[str]]) -> list[dict[str, str]]:
    header, *rows = table
    return [dict(zip(header, row, strict=True)) for row in rows]


def xlsx_sheet(response):
    workbook = load_workbook(io.BytesIO(body(response)))
    return workbook.worksheets[0]


def export(client, url: str = MEMBER_EXPORT, **params):
    return client.get(url, {"format": "csv", **params})


@pytest.fixture
def user_for(role_user, django_user_model):
    """Return a user for a role name, "superuser", or None (staff without a group)."""

    def make(who, username: str | None = None):
        if who == "superuser":
            return django_user_model.objects.create_superuser(
                username or "root", "root@example.com", "pw-for-tests-1"
            )
        return role_user(who, username)

    return make


@pytest.fixture
def superuser_client(client, user_for):
    client.force_login(user_for("superuser"))
    return client


@pytest.fixture
def analyst_client(client, analyst_user):
    client.force_login(analyst_user)
    return client


@pytest.fixture
def formula_members(db):
    """One member named after each formula, and one in debt (a negative balance)."""
    members = [
        MemberFactory(first_name=payload, last_name="Formula", card_number=f"90000{n}")
        for n, payload in enumerate(FORMULAS)
    ]
    debtor = MemberFactory(first_name="Debtor", last_name="Formula", card_number="900099")
    points_post(
        member_id=debtor.pk, amount=-150, kind=PointsEntry.Kind.RETURN, allow_debt=True,
        idempotency_key="test:return-debt",
    )
    return members, debtor


@pytest.fixture
def awkward_members(db):
    """Members whose cells test every rule of the CSV: quotes, commas, newlines, NULLs."""
    moscow = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
    rows = [
        {"first_name": 'Anna "Nutty"', "last_name": "O'Brien, Jr", "city": "Санкт-Петербург",
         "birth_date": date(1990, 2, 28), "email_consent": True, "last_purchase_at": moscow},
        {"first_name": "Line\nbreak", "last_name": "Carriage\rreturn", "city": "",
         "email": "", "phone": ""},
        {"first_name": "=1+1", "last_name": "-Minus", "city": "@home", "gender": "female"},
        {"first_name": "\\.", "last_name": "Олег", "city": "  spaced  "},
    ]
    members = [MemberFactory(card_number=f"77000{n}", **row) for n, row in enumerate(rows)]
    points_give(members[0], 1234)
    points_post(
        member_id=members[1].pk, amount=-40, kind=PointsEntry.Kind.RETURN, allow_debt=True,
        idempotency_key="test:awkward-debt",
    )
    return members


# ------------------------------------------------------------------ cells


@pytest.mark.parametrize("payload", FORMULAS + ["\r", "\t", "-", "=", "+", "@"])
def test_cell_neutralise_makes_every_formula_text(payload):
    assert exports.cell_neutralise(payload) == "'" + payload


@pytest.mark.parametrize(
    "value", [-1, 0, 42, Decimal("-12.50"), -0.5, None, "", "Ivan", "1+1", "a=b", " =1"]
)
def test_cell_neutralise_leaves_numbers_and_plain_text_alone(value):
    assert exports.cell_neutralise(value) == value


def test_member_key_is_hmac_sha256_of_the_id_and_stable():
    import hashlib
    import hmac

    expected = hmac.new(
        settings.SECRET_KEY.encode(), b"1234", hashlib.sha256
    ).hexdigest()[:16]
    assert exports.member_key(1234) == expected == exports.member_key(1234)
    assert exports.member_key(1235) != expected
    assert exports.member_key(None) == ""


# ------------------------------------------------------------------ formula injection


def test_formula_names_come_out_as_text_in_csv(superuser_client, formula_members):
    members, debtor = formula_members
    rows = {row["Card number"]: row for row in as_dicts(csv_table(export(superuser_client)))}
    for member in members:
        assert rows[member.card_number]["First name"] == "'" + member.first_name
    # A negative number is a number: no quote in front of it.
    assert rows[debtor.card_number]["Points balance"] == "-150"
    assert rows[debtor.card_number]["First name"] == "Debtor"


def test_formula_names_come_out_as_text_in_xlsx(superuser_client, formula_members):
    members, debtor = formula_members
    response = export(superuser_client, format="xlsx")
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    sheet = xlsx_sheet(response)
    header = [cell.value for cell in sheet[1]]
    card, name, balance = (header.index(h) for h in ("Card number", "First name",
                                                     "Points balance"))
    rows = {row[card].value: row for row in sheet.iter_rows(min_row=2)}
    for member in members:
        cell = rows[member.card_number][name]
        assert cell.data_type == "s", member.first_name
        # XML reads a carriage return back as a line feed; the cell is text either way.
        assert cell.value == "'" + member.first_name.replace("\r", "\n")
    debt = rows[debtor.card_number][balance]
    assert (debt.data_type, debt.value) == ("n", -150)


def test_ledger_export_keeps_signed_points_numeric(superuser_client, formula_members):
    _members, debtor = formula_members
    rows = as_dicts(csv_table(export(superuser_client, LEDGER_EXPORT)))
    debt = next(row for row in rows if row["Member ID"] == str(debtor.pk))
    assert (debt["Points"], debt["Balance after"]) == ("-150", "-150")


# ------------------------------------------------------------------ exactly what is on screen


def test_export_holds_exactly_the_rows_filtered_and_searched_on_screen(superuser_client):
    wanted = [
        MemberFactory(first_name="Ivan", last_name="Petrov", status=Member.Status.BLOCKED),
        MemberFactory(first_name="Oleg", last_name="Petrova", status=Member.Status.BLOCKED),
    ]
    MemberFactory(first_name="Ivan", last_name="Petrov")  # active: filtered out
    MemberFactory(first_name="Ivan", last_name="Sidorov", status=Member.Status.BLOCKED)
    MemberFactory(first_name="Anna", last_name="Petrova", status=Member.Status.CLOSED)
    params = {"status__exact": "blocked", "q": "petrov"}

    page = superuser_client.get(reverse("admin:members_member_changelist"), params)
    on_screen = [member.card_number for member in page.context["cl"].result_list]
    rows = as_dicts(csv_table(export(superuser_client, **params)))

    assert [row["Card number"] for row in rows] == on_screen
    assert sorted(on_screen) == sorted(member.card_number for member in wanted)
    job = ExportJob.objects.get()
    assert (job.rows_done, job.query) == (2, "status__exact=blocked&q=petrov")


def test_export_ignores_the_page_number_and_exports_every_page(superuser_client):
    MemberFactory.create_batch(60, status=Member.Status.BLOCKED)
    rows = csv_table(export(superuser_client, status__exact="blocked", p="2"))
    assert len(rows) == 61


def test_filters_the_list_refuses_are_refused(superuser_client):
    response = export(superuser_client, no_such_field="1")
    assert response.status_code == 400
    assert not ExportJob.objects.exists()


def test_an_unknown_format_is_refused(superuser_client):
    assert export(superuser_client, format="pdf").status_code == 400


# ------------------------------------------------------------------ personal data


def test_analyst_gets_no_personal_columns_and_a_stable_member_key(analyst_client, member):
    first = csv_table(export(analyst_client))
    second = csv_table(export(analyst_client))
    header = first[0]
    assert header[0] == "Member key"
    assert not PERSONAL_HEADERS & set(header)
    text = "\n".join(",".join(row) for row in first)
    for personal in (member.email, member.phone, member.first_name, member.card_number):
        assert personal not in text
    assert first[1][0] == exports.member_key(member.pk) == second[1][0]
    job = ExportJob.objects.first()
    assert job.personal_data is False


def test_analyst_ledger_export_shows_the_member_only_as_a_key(analyst_client, member):
    rows = as_dicts(csv_table(export(analyst_client, LEDGER_EXPORT)))
    assert rows and set(rows[0]) >= {"Member key", "Points"}
    assert "Card number" not in rows[0] and "Member ID" not in rows[0]
    assert {row["Member key"] for row in rows} == {exports.member_key(member.pk)}


def test_superuser_gets_the_personal_columns(superuser_client, member):
    (row,) = as_dicts(csv_table(export(superuser_client)))
    assert "Member key" not in row
    assert (row["Card number"], row["E-mail"], row["Phone"], row["First name"]) == (
        member.card_number, member.email, member.phone, member.first_name,
    )
    assert row["Points balance"] == "100"
    assert ExportJob.objects.get().personal_data is True


def test_personal_data_permission_alone_brings_the_columns_back(
    client, analyst_user, member
):
    from django.contrib.auth.models import Permission

    analyst_user.user_permissions.add(
        Permission.objects.get(codename="export_personal_data")
    )
    client.force_login(analyst_user)
    (row,) = as_dicts(csv_table(export(client)))
    assert row["E-mail"] == member.email


# ------------------------------------------------------------------ who may export


def exportable_lists() -> list[tuple[type, str]]:
    """Return (model, export URL) of every list the admin site exports."""
    return sorted(
        (
            (model, reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_export"))
            for model in admin.site._registry
            if exports.export_resource_for(model) is not None
        ),
        key=lambda pair: pair[1],
    )


def test_every_members_list_has_an_export():
    urls = [url for _model, url in exportable_lists()]
    for name in ("member", "purchase", "pointsentry", "pointsadjustment", "store",
                 "productcategory", "memberstatuschange"):
        assert reverse(f"admin:members_{name}_export") in urls


@pytest.mark.parametrize(
    "who", ["superuser", SUPPORT, ANALYST, MARKETING_MANAGER, None],
    ids=["superuser", "support", "analyst", "manager", "no-group"],
)
def test_only_users_with_the_view_permission_export_a_list(client, user_for, who, member):
    user = user_for(who)
    client.force_login(user)
    answers = {}
    for model, url in exportable_lists():
        response = export(client, url)
        if response.status_code == 200:
            body(response)
        answers[model._meta.label_lower] = response.status_code
    expected = {
        model._meta.label_lower:
            200 if user.has_perm(exports.export_permission(model._meta)) else 403
        for model, _url in exportable_lists()
    }
    assert answers == expected
    if who in (SUPPORT, ANALYST, MARKETING_MANAGER):
        assert answers["members.member"] == 200
    if who is None:
        assert set(answers.values()) == {403}
        assert not ExportJob.objects.exists()


def test_a_single_view_permission_opens_only_that_lists_export(client, role_user):
    from django.contrib.auth.models import Permission

    user = role_user(None, "store-viewer")
    user.user_permissions.add(Permission.objects.get(codename="view_store"))
    client.force_login(user)
    answers = {model._meta.model_name: export(client, url).status_code
               for model, url in exportable_lists()}
    assert answers.pop("store") == 200
    assert set(answers.values()) == {403}


def test_analyst_may_export_every_list():
    """The Analyst role holds the view permission of every list that exports."""
    from django.contrib.auth.models import Group

    analyst = Group.objects.get(name=ANALYST)
    granted = {
        (perm.content_type.app_label, perm.codename)
        for perm in analyst.permissions.select_related("content_type")
    }
    for model in admin.site._registry:
        if exports.export_resource_for(model) is None:
            continue
        opts = model._meta
        assert (opts.app_label, f"view_{opts.model_name}") in granted, opts.label


def test_anonymous_is_sent_to_the_login_page(client, member):
    for _model, url in exportable_lists():
        response = export(client, url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(ADMIN_LOGIN), url
    assert not ExportJob.objects.exists()


def test_export_buttons_carry_the_lists_filters(analyst_client):
    page = analyst_client.get(
        reverse("admin:members_member_changelist"), {"status__exact": "blocked", "q": "ivan"}
    ).content.decode()
    assert 'id="export-csv"' in page and 'id="export-xlsx"' in page
    assert f"{MEMBER_EXPORT}?status__exact=blocked&amp;q=ivan&amp;format=csv" in page


def test_export_buttons_keep_the_add_button(superuser_client):
    page = superuser_client.get(reverse("admin:members_store_changelist")).content.decode()
    assert 'id="export-csv"' in page
    assert reverse("admin:members_store_add") in page


def test_no_export_buttons_without_a_resource(superuser_client):
    page = superuser_client.get(reverse("admin:auth_user_changelist")).content.decode()
    assert 'id="export-csv"' not in page


# ------------------------------------------------------------------ languages and the log


def test_headers_are_in_the_users_language(client, analyst_user, member):
    client.force_login(analyst_user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ru"
    header = csv_table(export(client))[0]
    assert "Статус" in header and "Баланс баллов" in header
    assert "Status" not in header
    sheet = xlsx_sheet(export(client, format="xlsx"))
    assert "Статус" in [cell.value for cell in sheet[1]]
    assert set(ExportJob.objects.values_list("language", flat=True)) == {"ru"}


def test_every_export_is_logged_with_who_what_and_how_many(analyst_client, analyst_user):
    MemberFactory.create_batch(3, status=Member.Status.BLOCKED)
    MemberFactory()
    body(export(analyst_client, status__exact="blocked"))
    body(export(analyst_client, format="xlsx"))
    csv_job, xlsx_job = ExportJob.objects.order_by("id")
    assert (csv_job.user, csv_job.source, csv_job.query, csv_job.file_format) == (
        analyst_user, "members.member", "status__exact=blocked", "csv"
    )
    assert (csv_job.status, csv_job.rows_done, csv_job.rows_total) == ("done", 3, 3)
    assert (xlsx_job.file_format, xlsx_job.rows_done, xlsx_job.query) == ("xlsx", 4, "")
    assert csv_job.finished_at is not None and not csv_job.personal_data


# ------------------------------------------------------------------ the background job


@pytest.fixture
def background(settings, django_capture_on_commit_callbacks):
    """Above 1 row an export is a background job; run it as the commit would."""
    settings.LOYALTY_EXPORT_STREAM_MAX_ROWS = 1

    def run(client, url=MEMBER_EXPORT, **params):
        with django_capture_on_commit_callbacks(execute=True):
            response = export(client, url, **params)
        assert response.status_code == 302
        job = ExportJob.objects.latest("id")
        assert response["Location"] == reverse(
            "admin:members_exportjob_progress", args=[job.pk]
        )
        return job

    return run


def streamed(client, settings, url=MEMBER_EXPORT, **params) -> bytes:
    settings.LOYALTY_EXPORT_STREAM_MAX_ROWS = 1_000_000
    return body(export(client, url, **params))


def download(client, job: ExportJob) -> bytes:
    response = client.get(reverse("admin:members_exportjob_download", args=[job.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    return body(response)


@pytest.mark.parametrize("who", ["superuser", ANALYST])
def test_background_csv_is_the_same_file_as_the_streamed_one(
    client, user_for, who, awkward_members, formula_members, background, settings
):
    client.force_login(user_for(who))
    job = background(client)
    job.refresh_from_db()
    assert (job.status, job.rows_done, job.rows_total) == ("done", 12, 12)
    assert job.file.name.startswith("exports/")
    from_job = download(client, job)
    assert from_job == streamed(client, settings)
    table = list(csv.reader(io.StringIO(from_job.decode("utf-8")[1:], newline="")))
    assert len(table) == 13
    if who == ANALYST:
        keys = {row[0] for row in table[1:]}
        assert exports.member_key(awkward_members[0].pk) in keys


def test_background_csv_of_a_filtered_ledger_matches_the_stream(
    superuser_client, awkward_members, formula_members, background, settings
):
    params = {"kind__exact": "return"}
    job = background(superuser_client, LEDGER_EXPORT, **params)
    from_job = download(superuser_client, job)
    assert from_job == streamed(superuser_client, settings, LEDGER_EXPORT, **params)
    assert len(from_job.decode().splitlines()) == 3


def test_csv_cells_are_written_as_a_spreadsheet_expects(superuser_client, awkward_members):
    rows = {row["Card number"]: row for row in as_dicts(csv_table(export(superuser_client)))}
    anna, breaks, formula, odd = (rows[member.card_number] for member in awkward_members)
    assert (anna["First name"], anna["Last name"]) == ('Anna "Nutty"', "O'Brien, Jr")
    assert (anna["Birth date"], anna["E-mail consent"], anna["SMS consent"]) == (
        "1990-02-28", "true", "false"
    )
    # In the programme's time zone (Moscow, UTC+3), to the second.
    assert anna["Last purchase"] == "2026-03-01 12:30:15"
    assert anna["Points balance"] == "1234" and breaks["Points balance"] == "-40"
    assert (breaks["First name"], breaks["Last name"]) == ("Line\nbreak", "Carriage\rreturn")
    assert (formula["First name"], formula["Last name"], formula["City"]) == (
        "'=1+1", "'-Minus", "'@home"
    )
    assert (odd["First name"], odd["City"]) == ("\\.", "  spaced  ")


def test_background_xlsx_has_the_rows_with_numbers_as_numbers(
    superuser_client, formula_members, background
):
    members, debtor = formula_members
    job = background(superuser_client, format="xlsx")
    job.refresh_from_db()
    assert (job.status, job.rows_done) == ("done", len(members) + 1)
    workbook = load_workbook(io.BytesIO(download(superuser_client, job)))
    sheet = workbook.worksheets[0]
    header = [cell.value for cell in sheet[1]]
    rows = {row[header.index("Card number")].value: row for row in sheet.iter_rows(min_row=2)}
    assert rows[debtor.card_number][header.index("Points balance")].value == -150
    enrolled = rows[debtor.card_number][header.index("Enrolled at")]
    assert enrolled.is_date
    assert {rows[m.card_number][header.index("First name")].value for m in members} == {
        "'" + payload.replace("\r", "\n") for payload in FORMULAS
    }


def test_a_second_delivery_of_a_finished_job_does_nothing(superuser_client, member, background):
    MemberFactory.create_batch(3)
    job = background(superuser_client)
    job.refresh_from_db()
    before = (job.file.name, job.finished_at, job.rows_done)
    assert exports.export_job_run.apply(args=[job.pk]).get() == 4
    job.refresh_from_db()
    assert (job.file.name, job.finished_at, job.rows_done) == before
    assert ExportJob.objects.count() == 1


def test_a_job_whose_user_lost_the_permission_fails_with_a_reason(analyst_user, member):
    job = ExportJob.objects.create(
        user=analyst_user, source="members.member", query="", file_format="csv",
    )
    analyst_user.groups.clear()
    exports.export_job_run.apply(args=[job.pk])
    job.refresh_from_db()
    assert job.status == ExportJob.Status.FAILED
    assert "not allowed" in job.error and not job.file


# ------------------------------------------------------------------ progress and download


def test_progress_page_refreshes_while_running_and_links_the_file_when_done(
    analyst_client, analyst_user
):
    running = ExportJob.objects.create(
        user=analyst_user, source="members.member", query="status__exact=blocked",
        file_format="csv", status=ExportJob.Status.RUNNING, rows_total=200_000,
        rows_done=50_000,
    )
    page = analyst_client.get(reverse("admin:members_exportjob_progress", args=[running.pk]))
    text = page.content.decode()
    assert '<meta http-equiv="refresh" content="2">' in text
    assert '<progress max="100" value="25">' in text
    assert "export-download" not in text

    MemberFactory.create_batch(2)
    done = ExportJob.objects.create(
        user=analyst_user, source="members.member", query="", file_format="csv",
    )
    exports.export_job_run.apply(args=[done.pk])
    text = analyst_client.get(
        reverse("admin:members_exportjob_progress", args=[done.pk])
    ).content.decode()
    assert 'http-equiv="refresh"' not in text
    assert reverse("admin:members_exportjob_download", args=[done.pk]) in text


def test_export_log_pages_open_and_nothing_in_it_is_added_or_changed(
    superuser_client, django_user_model
):
    job = ExportJob.objects.create(
        user=django_user_model.objects.get(username="root"), source="members.member",
        file_format="csv",
    )
    changelist = reverse("admin:members_exportjob_changelist")
    for params in ({}, {"q": "x"}, {"status__exact": "done"}):
        assert superuser_client.get(changelist, params).status_code == 200
    assert superuser_client.get(reverse("admin:members_exportjob_add")).status_code == 403
    change = superuser_client.get(reverse("admin:members_exportjob_change", args=[job.pk]))
    assert change.status_code == 200 and 'id="export-status"' in change.content.decode()
    assert superuser_client.post(
        reverse("admin:members_exportjob_delete", args=[job.pk]), {"post": "yes"}
    ).status_code == 403
    assert ExportJob.objects.filter(pk=job.pk).exists()


def test_people_see_and_download_only_their_own_exports(client, user_for, member):
    owner = user_for(ANALYST, "analyst-owner")
    other = user_for(ANALYST, "analyst-other")
    job = ExportJob.objects.create(user=owner, source="members.member", file_format="csv")
    exports.export_job_run.apply(args=[job.pk])
    progress = reverse("admin:members_exportjob_progress", args=[job.pk])
    file_url = reverse("admin:members_exportjob_download", args=[job.pk])

    client.force_login(other)
    assert client.get(progress).status_code == 404
    assert client.get(file_url).status_code == 404
    listing = client.get(reverse("admin:members_exportjob_changelist"))
    assert listing.status_code == 200 and list(listing.context["cl"].result_list) == []

    client.force_login(owner)
    assert client.get(progress).status_code == 200
    assert download(client, job).startswith("\ufeff".encode())
    assert list(client.get(reverse("admin:members_exportjob_changelist"))
                .context["cl"].result_list) == [job]

    client.force_login(user_for("superuser"))
    assert client.get(file_url).status_code == 200


def test_the_file_is_never_under_a_public_url(superuser_client, member, background):
    MemberFactory.create_batch(3)
    job = background(superuser_client)
    job.refresh_from_db()
    assert superuser_client.get("/" + settings.MEDIA_URL + job.file.name).status_code == 404


def test_a_user_who_lost_the_permission_cannot_download_the_file(client, analyst_user, member):
    job = ExportJob.objects.create(user=analyst_user, source="members.member", file_format="csv")
    exports.export_job_run.apply(args=[job.pk])
    analyst_user.groups.clear()
    client.force_login(analyst_user)
    response = client.get(reverse("admin:members_exportjob_download", args=[job.pk]))
    assert response.status_code == 404


def test_store_export_has_no_member_key(analyst_client):
    StoreFactory(code="=EVIL", name="Shop, \"quoted\"", city="Kazan")
    rows = as_dicts(csv_table(export(analyst_client, reverse("admin:members_store_export"))))
    assert rows == [{"Code": "'=EVIL", "Name": 'Shop, "quoted"', "City": "Kazan"}]


def test_filename_names_the_list_and_the_time(analyst_client, member):
    response = export(analyst_client)
    job = ExportJob.objects.get()
    stamp = timezone.localtime(job.created_at).strftime("%Y%m%d-%H%M")
    assert f'filename="members-member-{stamp}.csv"' in response["Content-Disposition"]
    body(response)
