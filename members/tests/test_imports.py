"""Imports of members from real files, the import screens and their permissions.

Files are written by the tests in the encodings, delimiters and formats that Excel, cash
registers and CRMs produce; every refusal is checked for its message and for a database
left exactly as it was.
"""

import codecs
import csv
import hashlib
import io
import os
import subprocess
import sys
import time
import zipfile
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
from celery import Celery
from django.contrib import admin
from django.core.files.base import ContentFile
from django.db import connection, connections
from django.urls import path, reverse
from django.utils import timezone

from loyalty_admin import urls as project_urls
from members.importing import admin as import_admin
from members.importing import files, runner
from members.importing.kinds import MembersKind
from members.importing.registry import header_normalise, kinds_all
from members.importing.tasks import import_job_apply_run, import_job_preview_run
from members.models import ImportJob, Member, PointsEntry, Purchase
from members.roles import ANALYST, MARKETING_MANAGER, SUPPORT
from members.tests.factories import MemberFactory

# The import screens register themselves when members/admin.py imports them; until then
# (and independently of it) these tests serve the project's URLs with them included.
urlpatterns = [
    pattern for pattern in project_urls.urlpatterns if str(pattern.pattern) != "admin/"
] + [path("admin/", admin.site.urls)]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

MEMBERS_HEADER_EN = ["Card number", "First name", "Last name", "Phone", "E-mail",
                     "Birth date", "E-mail consent", "SMS consent"]
MEMBERS_HEADER_RU = ["Номер карты", "Имя", "Фамилия", "Телефон", "Эл. почта",
                     "Дата рождения", "Согласие на e-mail", "Согласие на SMS"]


# ------------------------------------------------------------------ helpers


def csv_bytes(rows, *, delimiter=",", encoding="utf-8", bom=False) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    data = buffer.getvalue().encode(encoding)
    return (codecs.BOM_UTF8 + data) if bom else data


def xlsx_bytes(rows, *, title="Sheet") -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = title
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def job_make(user, kind: str, content: bytes, *, name="members.csv", skip_bad_rows=False):
    job = ImportJob(
        kind=kind, original_name=name, file_size=len(content),
        file_sha256=hashlib.sha256(content).hexdigest(), skip_bad_rows=skip_bad_rows,
        created_by=user,
    )
    job.file.save(name, ContentFile(content), save=False)
    job.save()
    return job


def import_run(user, kind, content, **options) -> ImportJob:
    """Preview, then (if the preview allows it) import, as the screens would."""
    job = job_make(user, kind, content, **options)
    runner.import_job_preview(job)
    if job.status == ImportJob.Status.PREVIEWED:
        runner.import_job_confirm(job)
        runner.import_job_apply(job)
    return job


def db_state() -> dict:
    """What an import could change: counts of rows and the sum of the balances."""
    return {
        "members": Member.objects.count(),
        "updated": sorted(Member.objects.values_list("id", "updated_at")),
        "purchases": Purchase.objects.count(),
        "ledger": PointsEntry.objects.count(),
        "balances": sum(Member.objects.values_list("points_balance", flat=True)),
    }


def error_of(job: ImportJob, row: int) -> dict:
    return next(error for error in job.errors if error["row"] == row)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def staff(admin_user):
    return admin_user


# ------------------------------------------------------------------ cells


@pytest.mark.parametrize("text, expected", [
    ("1234.56", "1234.56"), ("1234,56", "1234.56"), ("1 234,56", "1234.56"),
    ("1\u00a0234,56", "1234.56"), ("1,234.56", "1234.56"), ("1.234,56", "1234.56"),
    ("1 234 567", "1234567"), ("12", "12"), (" 7,5 ", "7.5"),
])
def test_decimal_accepts_comma_dot_and_spaces_between_thousands(text, expected):
    assert str(files.decimal_parser()(files.cell_clean(text))) == expected


@pytest.mark.parametrize("text, message", [
    ("abc", "“abc” is not a number."),
    ("1,2,3", "“1,2,3” is not a number."),
    ("-5", "“-5” is negative; only zero or more is allowed here."),
    ("1,234", "“1,234” has more than 2 digits after the decimal point."),
])
def test_decimal_refusals_say_why(text, message):
    with pytest.raises(files.CellError) as refused:
        files.decimal_parser()(text)
    assert str(refused.value) == message


@pytest.mark.parametrize("text, expected", [
    ("31.12.2025", datetime(2025, 12, 31)),
    ("2025-12-31", datetime(2025, 12, 31)),
    ("31.12.2025 18:05", datetime(2025, 12, 31, 18, 5)),
    ("2025-12-31 18:05:07", datetime(2025, 12, 31, 18, 5, 7)),
    ("2025-12-31T18:05", datetime(2025, 12, 31, 18, 5)),
])
def test_every_date_format_is_read_in_the_programme_time_zone(text, expected):
    assert files.datetime_parser()(text) == timezone.make_aware(expected)


def test_future_and_impossible_dates_are_refused():
    with pytest.raises(files.CellError, match="is in the future"):
        files.datetime_parser(future=False)(f"{timezone.localdate().year + 1}-01-01")
    with pytest.raises(files.CellError, match="is not a date"):
        files.date_parser()("31.02.2024")
    with pytest.raises(files.CellError, match="is not a date"):
        files.date_parser()("12/31/2024")


@pytest.mark.parametrize("text", [
    "+7 (912) 345-67-89", "8 912 345 67 89", "9123456789", "+7-912-345-6789", 79123456789.0,
])
def test_phones_in_any_common_format(text):
    assert files.parse_phone(text) == "79123456789"


@pytest.mark.parametrize("text, expected", [
    ("yes", True), ("Да", True), ("1", True), ("TRUE", True),
    ("no", False), ("нет", False), ("0", False), ("false", False),
])
def test_booleans_in_english_and_russian(text, expected):
    assert files.parse_bool(text) is expected


def test_every_header_name_means_one_column_only():
    for kind in kinds_all().values():
        seen: dict[str, str] = {}
        for column in kind.columns:
            for name in column.names():
                assert seen.setdefault(name, column.key) == column.key, (kind.key, name)


def test_header_names_ignore_case_spacing_and_punctuation():
    assert header_normalise("  E-MAIL ") == header_normalise("e_mail") == "e mail"
    assert header_normalise("Номер  карты") == "номер карты"


# ------------------------------------------------------------------ members: real files


def test_members_from_utf8_csv_with_english_headers(staff):
    content = csv_bytes([
        MEMBERS_HEADER_EN,
        ["4000 0000 0001", "Anna", "Smirnova", "+7 (912) 345-67-89", "Anna@Example.com",
         "31.12.1990", "yes", "no"],
        ["40000000002", "Boris", "", "8 912 000 11 22", "", "1985-05-06", "1", "0"],
    ])
    job = import_run(staff, "members", content)
    assert job.status == ImportJob.Status.DONE, job.errors or job.message
    assert job.counts == {"new": 2, "updated": 0, "unchanged": 0, "error": 0}
    anna = Member.objects.get(card_number="400000000001")
    assert (anna.first_name, anna.phone, anna.email) == ("Anna", "79123456789", "anna@example.com")
    assert anna.birth_date == date(1990, 12, 31)
    assert anna.email_consent and anna.email_consent_at and not anna.sms_consent
    assert anna.source_channel == Member.Channel.IMPORT
    assert anna.points_balance == 0 and not anna.points_entries.exists()
    boris = Member.objects.get(card_number="40000000002")
    assert (boris.phone, boris.birth_date) == ("79120001122", date(1985, 5, 6))


def test_members_from_utf8_bom_csv_with_semicolons_and_russian_headers(staff):
    content = csv_bytes([
        MEMBERS_HEADER_RU,
        ["5000001", "Ольга", "Ёлкина", "+79161234567", "olga@example.ru", "01.02.1999", "да",
         "нет"],
    ], delimiter=";", bom=True)
    job = import_run(staff, "members", content)
    assert job.status == ImportJob.Status.DONE, job.errors or job.message
    olga = Member.objects.get(card_number="5000001")
    assert (olga.first_name, olga.last_name) == ("Ольга", "Ёлкина")
    assert olga.email_consent and not olga.sms_consent


def test_member_language_is_read_in_either_language_and_a_wrong_one_is_named(staff):
    content = csv_bytes([
        ["card", "first name", "language"],
        ["5100001", "Ann", "English"],
        ["5100002", "Олег", "рус"],
    ])
    job = import_run(staff, "members", content)
    assert job.status == ImportJob.Status.DONE, job.errors or job.message
    assert dict(Member.objects.values_list("first_name", "language")) == {
        "Ann": "en", "Олег": "ru"}
    state = db_state()
    bad = import_run(staff, "members", csv_bytes([
        ["card", "first name", "language"], ["5100003", "Hans", "Deutsch"]]))
    assert bad.status == ImportJob.Status.REJECTED
    assert error_of(bad, 2)["column"] == "language"
    assert db_state() == state


def test_members_from_windows_1251_csv_of_russian_excel(staff):
    content = csv_bytes([
        MEMBERS_HEADER_RU,
        ["6000001", "Пётр", "Щукин", "8(903)111-22-33", "", "15.07.1970", "Да", "Да"],
        ["6000002", "Юлия", "Эйдельман", "9031112234", "", "", "", ""],
    ], delimiter=";", encoding="cp1251")
    job = import_run(staff, "members", content)
    assert job.status == ImportJob.Status.DONE, job.errors or job.message
    assert set(Member.objects.values_list("last_name", flat=True)) == {"Щукин", "Эйдельман"}
    assert Member.objects.get(card_number="6000002").phone == "79031112234"


def test_members_from_tab_separated_text(staff):
    content = csv_bytes([["card", "name", "city"], ["7000001", "Vera", "Kazan"]],
                        delimiter="\t")
    job = import_run(staff, "members", content, name="members.txt")
    assert job.status == ImportJob.Status.DONE, job.errors or job.message
    assert Member.objects.get(card_number="7000001").city == "Kazan"


def test_members_from_xlsx_with_typed_cells(staff):
    content = xlsx_bytes([
        ["Номер карты", "Имя", "Телефон", "Дата рождения", "Дата регистрации", "Согласие на SMS"],
        [8000001, "Ирина", 89161112233, datetime(1992, 3, 4), datetime(2020, 1, 2, 10, 30), True],
        ["8000002", "Олег", "+7 916 111-22-44", "04.03.1993", "2021-06-01", "нет"],
    ])
    job = import_run(staff, "members", content, name="members.xlsx")
    assert job.status == ImportJob.Status.DONE, job.errors or job.message
    irina = Member.objects.get(card_number="8000001")
    assert irina.phone == "79161112233" and irina.birth_date == date(1992, 3, 4)
    assert irina.enrolled_at == timezone.make_aware(datetime(2020, 1, 2, 10, 30))
    assert irina.sms_consent


def test_existing_members_are_updated_and_unchanged_ones_counted(staff):
    known = MemberFactory(card_number="9000001", first_name="Old", phone="79990000001")
    same = MemberFactory(card_number="9000002", first_name="Same", phone="79990000002")
    content = csv_bytes([
        ["card number", "first name", "phone", "city"],
        ["9000001", "New", "+7 999 000-00-01", ""],
        ["9000002", "Same", "8 999 000 00 02", ""],
    ])
    before = same.updated_at
    job = import_run(staff, "members", content)
    assert job.counts == {"new": 0, "updated": 1, "unchanged": 1, "error": 0}
    known.refresh_from_db()
    same.refresh_from_db()
    assert (known.first_name, known.city) == ("New", "")
    assert same.updated_at == before


def test_same_members_file_twice_changes_nothing_the_second_time(staff):
    content = csv_bytes([MEMBERS_HEADER_EN,
                         ["4100001", "Ann", "Lee", "9161230000", "a@example.com", "", "yes", ""]])
    first = import_run(staff, "members", content)
    state = db_state()
    second = import_run(staff, "members", content)
    assert first.counts["new"] == 1
    assert second.status == ImportJob.Status.DONE
    assert second.counts == {"new": 0, "updated": 0, "unchanged": 1, "error": 0}
    assert db_state() == state


# ------------------------------------------------------------------ members: bad input


def assert_rejected(job: ImportJob, state: dict, message: str) -> None:
    assert job.status == ImportJob.Status.REJECTED
    assert message in job.message, job.message
    assert db_state() == state


def test_utf16_file_is_refused_as_not_csv_and_imports_nothing(staff):
    MemberFactory()
    state = db_state()
    content = "Card number,First name\r\n1,Anna\r\n".encode("utf-16")
    job = import_run(staff, "members", content)
    assert_rejected(job, state, "The file is not a CSV or XLSX file in UTF-8 or Windows-1251.")


def test_binary_and_old_excel_files_are_refused(staff):
    state = db_state()
    job = import_run(staff, "members", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", name="x.csv")
    assert_rejected(job, state, "is not a CSV or XLSX file")
    job = import_run(staff, "members", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 64)
    assert_rejected(job, state, "Old Excel files (.xls) are not supported")


def test_missing_required_column_is_named_and_nothing_imported(staff):
    state = db_state()
    content = csv_bytes([["First name", "Phone"], ["Anna", "9161234567"]])
    job = import_run(staff, "members", content)
    assert_rejected(job, state, "The required column “card number” is missing.")
    assert "номер карты" in job.message and "“First name”, “Phone”" in job.message


def test_bad_cells_are_reported_with_row_and_column_and_nothing_imported(staff):
    MemberFactory(card_number="4200000")
    state = db_state()
    future = f"01.01.{timezone.localdate().year + 1}"
    content = csv_bytes([
        MEMBERS_HEADER_EN,
        ["4200001", "Good", "", "9161230001", "", "", "", ""],
        ["4200002", "Future", "", "9161230002", "", future, "", ""],
        ["4200003", "Phone", "", "12345", "", "", "", ""],
        ["4200004", "", "", "", "", "", "", ""],
        ["4200005", "Mail", "", "", "not-an-email", "", "maybe", ""],
        ["4200001", "Again", "", "", "", "", "", ""],
    ])
    job = import_run(staff, "members", content)
    assert job.status == ImportJob.Status.REJECTED
    assert job.counts == {"new": 1, "updated": 0, "unchanged": 0, "error": 5}
    assert error_of(job, 3) == {"row": 3, "column": "Birth date",
                                "message": f"“{future}” is in the future."}
    assert error_of(job, 4)["column"] == "Phone"
    assert "is not a phone number" in error_of(job, 4)["message"]
    assert error_of(job, 5) == {"row": 5, "column": "First name",
                                "message": "A new member needs a first name."}
    assert {(e["column"], e["message"][:22]) for e in job.errors if e["row"] == 6} == {
        ("E-mail consent", "“maybe” is not yes or "), ("E-mail", "Enter a valid email ad"),
    }
    assert error_of(job, 7) == {"row": 7, "column": "Card number",
                                "message": "This member already appears on row 2 of the file."}
    assert db_state() == state


def test_file_over_the_size_limit_is_refused_before_reading(staff, settings):
    settings.IMPORT_MAX_BYTES = 1024
    state = db_state()
    content = csv_bytes([MEMBERS_HEADER_EN] + [[str(i), "Name"] for i in range(300)])
    job = import_run(staff, "members", content)
    assert_rejected(job, state, "The file is 2.9 KB; the limit is 1.0 KB.")


def test_xlsx_over_the_row_limit_is_refused_from_its_zip_directory(staff, settings, monkeypatch):
    settings.IMPORT_MAX_ROWS = 100
    content = xlsx_bytes([["card number", "first name"]] + [[str(i), "N"] for i in range(500)])

    def no_parsing(*args, **kwargs):  # the refusal must come before any XML is parsed
        raise AssertionError("the workbook was parsed")

    monkeypatch.setattr(openpyxl, "load_workbook", no_parsing)
    state = db_state()
    job = import_run(staff, "members", content, name="bomb.xlsx")
    assert_rejected(job, state, "The file has more than 100 rows, the limit.")


def test_xlsx_that_hides_its_rows_is_stopped_at_the_limit_while_reading(staff, settings):
    settings.IMPORT_MAX_ROWS = 100
    content = xlsx_bytes([["card number", "first name"]] + [[str(i), "N"] for i in range(500)])
    # A sheet that declares one cell but holds 501 rows: the dimension cannot be trusted.
    source = zipfile.ZipFile(io.BytesIO(content))
    patched = io.BytesIO()
    with zipfile.ZipFile(patched, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.startswith("xl/worksheets/"):
                data = data.replace(b'<dimension ref="A1:B501"/>', b'<dimension ref="A1"/>')
            target.writestr(item, data)
    state = db_state()
    job = import_run(staff, "members", patched.getvalue(), name="hidden.xlsx")
    assert_rejected(job, state, "The file has more than 100 rows, the limit.")


def test_xlsx_that_unpacks_over_the_limit_is_refused(staff, settings):
    settings.IMPORT_MAX_XLSX_UNCOMPRESSED_BYTES = 2000
    content = xlsx_bytes([["card number", "first name"]] + [["1" * 30, "N" * 50]] * 50)
    state = db_state()
    job = import_run(staff, "members", content, name="big.xlsx")
    assert_rejected(job, state, "The workbook unpacks to")


def test_zip_that_is_not_a_workbook_is_refused(staff):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("word/document.xml", "<doc/>")
    state = db_state()
    job = import_run(staff, "members", buffer.getvalue(), name="doc.xlsx")
    assert_rejected(job, state, "is not a readable Excel workbook")


def test_csv_over_the_row_limit_is_refused(staff, settings):
    settings.IMPORT_MAX_ROWS = 3
    content = csv_bytes([["card", "name"]] + [[str(i), "N"] for i in range(10)])
    state = db_state()
    job = import_run(staff, "members", content)
    assert_rejected(job, state, "more than 3 rows")


# ------------------------------------------------------------------ skip bad rows


def test_skip_bad_rows_imports_the_good_ones_and_returns_the_rest(staff):
    content = csv_bytes([
        ["Номер карты", "Имя", "Телефон"],
        ["4300001", "Good", "9161230001"],
        ["4300002", "=HYPERLINK(\"http://x\",\"y\")", "12"],
        ["4300003", "", ""],
        ["4300004", "Fine", "+7 916 123-00-04"],
    ], delimiter=";")
    job = import_run(staff, "members", content, skip_bad_rows=True)
    assert job.status == ImportJob.Status.DONE
    assert job.counts == {"new": 2, "updated": 0, "unchanged": 0, "error": 2}
    assert set(Member.objects.values_list("card_number", flat=True)) == {"4300001", "4300004"}
    with job.rejected_file.open("rb") as rejected:
        text = rejected.read().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[0] == ["Номер карты", "Имя", "Телефон", "row", "reason"]
    assert rows[1][:4] == ["4300002", "'=HYPERLINK(\"http://x\",\"y\")", "12", "3"]
    assert "is not a phone number" in rows[1][4]
    assert rows[2][3:] == ["4", "A new member needs a first name."]
    assert len(rows) == 3


def test_rejected_file_imports_back_once_corrected(staff):
    content = csv_bytes([["card number", "first name"], ["4400001", ""]])
    job = import_run(staff, "members", content, skip_bad_rows=True)
    with job.rejected_file.open("rb") as rejected:
        corrected = rejected.read().replace(b"4400001,,", b"4400001,Fixed,")
    again = import_run(staff, "members", corrected)
    assert again.status == ImportJob.Status.DONE, again.errors
    assert Member.objects.get(card_number="4400001").first_name == "Fixed"


# ------------------------------------------------------------------ restarts and tasks


class Crash(Exception):
    """A worker killed mid-import."""


def crash_after(monkeypatch, batches: int) -> None:
    """Make the import die while writing batch number ``batches`` + 1."""
    original = runner._batch_apply
    calls = {"n": 0}

    def apply(kind, batch, job):
        calls["n"] += 1
        if calls["n"] > batches:
            raise Crash
        original(kind, batch, job)

    monkeypatch.setattr(runner, "_batch_apply", apply)


def members_file(count: int) -> bytes:
    return csv_bytes([["card", "first name"]] + [[f"45{i:05d}", f"N{i}"] for i in range(count)])


def test_batched_import_continues_after_a_worker_dies_without_double_rows(staff, monkeypatch):
    monkeypatch.setattr(runner, "BATCH_ROWS", 3)
    job = job_make(staff, "members", members_file(10), skip_bad_rows=True)
    runner.import_job_preview(job)
    runner.import_job_confirm(job)
    crash_after(monkeypatch, 2)
    with pytest.raises(Crash):
        runner.import_job_apply(job)
    job.refresh_from_db()
    assert (job.status, job.rows_done, job.counts["new"]) == ("importing", 6, 6)
    assert Member.objects.count() == 6
    monkeypatch.undo()
    monkeypatch.setattr(runner, "BATCH_ROWS", 3)
    runner.import_job_apply(job)  # the task delivered again
    assert job.status == ImportJob.Status.DONE
    assert job.counts == {"new": 10, "updated": 0, "unchanged": 0, "error": 0}
    assert Member.objects.count() == 10


def test_all_or_nothing_import_that_dies_leaves_nothing_and_runs_again(staff, monkeypatch):
    monkeypatch.setattr(runner, "BATCH_ROWS", 3)
    job = job_make(staff, "members", members_file(10))
    runner.import_job_preview(job)
    runner.import_job_confirm(job)
    crash_after(monkeypatch, 2)
    with pytest.raises(Crash):
        runner.import_job_apply(job)
    assert Member.objects.count() == 0
    monkeypatch.undo()
    runner.import_job_apply(job)
    assert job.status == ImportJob.Status.DONE and Member.objects.count() == 10
    # A third delivery, and a new job of the same file: nothing more.
    runner.import_job_apply(job)
    again = import_run(staff, "members", members_file(10))
    assert again.counts["unchanged"] == 10 and Member.objects.count() == 10


def test_tasks_look_at_the_status_first(staff):
    job = job_make(staff, "members", members_file(2))
    assert import_job_apply_run.delay(job.pk).get() == "uploaded"  # not confirmed: nothing
    assert Member.objects.count() == 0
    assert import_job_preview_run.delay(job.pk).get() == "previewed"
    runner.import_job_confirm(job)
    assert import_job_apply_run.delay(job.pk).get() == "done"
    assert import_job_apply_run.delay(job.pk).get() == "done"
    assert import_job_preview_run.delay(job.pk).get() == "done"
    assert Member.objects.count() == 2
    assert import_job_apply_run.delay(10**9).get() == "missing"


def test_a_task_that_fails_marks_the_job_failed(staff, monkeypatch):
    job = job_make(staff, "members", members_file(2))
    import_job_preview_run.delay(job.pk)
    runner.import_job_confirm(job)
    monkeypatch.setattr(MembersKind, "apply", lambda self, records, job: 1 / 0)
    assert import_job_apply_run.delay(job.pk).get() == "failed"
    job.refresh_from_db()
    assert "nothing was imported" in job.message and Member.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_progress_is_visible_to_other_connections_during_an_all_or_nothing_import(
    django_user_model, monkeypatch, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    monkeypatch.setattr(runner, "BATCH_ROWS", 5)
    monkeypatch.setattr(runner, "PROGRESS_EVERY", 5)
    user = django_user_model.objects.create_superuser("root-progress", "r@example.com", "pw")
    job = job_make(user, "members", members_file(20))
    runner.import_job_preview(job)
    runner.import_job_confirm(job)
    observer = connections.create_connection("default")
    seen = []
    original = runner._batch_apply

    def apply(kind, batch, job_):
        with observer.cursor() as cursor:
            cursor.execute("SELECT rows_done FROM members_importjob WHERE id = %s", [job.pk])
            seen.append(cursor.fetchone()[0])
            cursor.execute("SELECT count(*) FROM members_member")
            seen.append(("members", cursor.fetchone()[0]))
        original(kind, batch, job_)

    monkeypatch.setattr(runner, "_batch_apply", apply)
    try:
        runner.import_job_apply(job)
    finally:
        observer.close()
    assert seen == [0, ("members", 0), 5, ("members", 0), 10, ("members", 0),
                    15, ("members", 0)]
    assert job.status == ImportJob.Status.DONE and Member.objects.count() == 20


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_killed_mid_import_is_resumed_by_the_next_without_double_rows(
    django_user_model, settings, tmp_path
):
    """The production wiring: Redis, worker processes, a SIGKILL, the task sent again."""
    settings.MEDIA_ROOT = tmp_path / "media"
    redis_url = os.environ["REDIS_URL"]  # bin/test.sh starts Redis and sets it
    user = django_user_model.objects.create_superuser("root-worker", "r@example.com", "pw")
    job = job_make(user, "members", members_file(1500), skip_bad_rows=True)
    runner.import_job_preview(job)
    runner.import_job_confirm(job)
    database_url = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    env = {
        **os.environ,
        "DATABASE_URL": f"{database_url}/{connection.settings_dict['NAME']}",
        "CELERY_BROKER_URL": redis_url, "CELERY_RESULT_BACKEND": redis_url,
        "DJANGO_SETTINGS_MODULE": "loyalty_admin.settings.test",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }

    def worker() -> subprocess.Popen:
        # -I: the tasks are known to workers once members/tasks.py imports them.
        return subprocess.Popen(  # noqa: S603 - our own worker, fixed arguments
            [sys.executable, "-m", "celery", "-A", "loyalty_admin", "worker", "--pool=solo",
             "-I", "members.importing.tasks", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "-l", "warning"],
            cwd=Path(__file__).resolve().parents[2], env=env,
        )

    client = Celery(broker=redis_url, backend=redis_url, set_as_current=False)
    client.conf.update(task_serializer="json", accept_content=["json"])
    first = worker()
    try:
        client.send_task("members.tasks.import_job_apply_run", args=[job.pk, "en"])
        deadline = time.monotonic() + 90
        while ImportJob.objects.get(pk=job.pk).rows_done < 500:
            assert time.monotonic() < deadline, "the first worker never got going"
            time.sleep(0.05)
    finally:
        first.kill()  # no clean-up, no except clause: as a dying machine
        first.wait(timeout=30)
    job.refresh_from_db()
    imported = Member.objects.count()
    assert job.status == ImportJob.Status.IMPORTING and 0 < imported < 1500
    assert imported == job.rows_done == job.counts["new"]  # the checkpoint commits with its rows
    second = worker()
    try:
        # What acks_late does after the visibility timeout: the same message again.
        result = client.send_task("members.tasks.import_job_apply_run", args=[job.pk, "en"])
        assert result.get(timeout=180) == "done"
    finally:
        second.terminate()
        second.wait(timeout=30)
    job.refresh_from_db()
    assert job.counts == {"new": 1500, "updated": 0, "unchanged": 0, "error": 0}
    assert Member.objects.count() == 1500


# ------------------------------------------------------------------ screens and roles


@pytest.fixture
def user_for(role_user, django_user_model):
    def make(who):
        if who == "superuser":
            return django_user_model.objects.create_superuser("root", "r@example.com", "pw-1")
        return role_user(who)

    return make


def import_urls(job: ImportJob) -> dict[str, str]:
    return {
        "list": reverse("admin:members_importjob_changelist"),
        "new": reverse("admin:members_importjob_add"),
        "job": reverse("admin:members_importjob_change", args=[job.pk]),
        "rejected": reverse("admin:members_importjob_rejected", args=[job.pk]),
        "template": reverse("admin:members_importjob_template", args=[job.kind]),
    }


# Who may import what: Support members and voucher uses; purchases and opening
# balances only the superuser (until a data-loading role is granted them).
ALLOWED = {
    "members": {"superuser", SUPPORT},
    "voucher_uses": {"superuser", SUPPORT},
    "purchases": {"superuser"},
    "opening_balances": {"superuser"},
}


@pytest.mark.parametrize("kind", sorted(ALLOWED))
@pytest.mark.parametrize("who", ["superuser", SUPPORT, ANALYST, MARKETING_MANAGER, None],
                         ids=["superuser", "support", "analyst", "manager", "no-group"])
def test_import_urls_answer_only_the_roles_allowed(client, user_for, staff, kind, who):
    job = job_make(staff, kind, b"card\r\n1\r\n", skip_bad_rows=True)
    job.rejected_file.save("rejected.csv", ContentFile(b"card,row,reason\r\n"))
    client.force_login(user_for(who))
    allowed = who in ALLOWED[kind]
    for name, url in import_urls(job).items():
        status = client.get(url).status_code
        if name in ("list", "new"):
            # The list and the upload page are open to anyone who may import some kind
            # (managers: marketing spend).
            may_import_something = who in ("superuser", SUPPORT, MARKETING_MANAGER)
            assert (status == 200) is may_import_something, (name, status)
            assert status in (200, 403), (name, status)
        else:
            assert status == (200 if allowed else 403), (name, status)
    for name in ("confirm", "cancel"):
        url = reverse(f"admin:members_importjob_{name}", args=[job.pk])
        assert (client.post(url).status_code == 403) is not allowed, name


def test_support_sees_only_the_kinds_they_may_import(client, user_for, staff):
    job_make(staff, "purchases", b"x", name="receipts.csv")
    job_make(staff, "members", b"x", name="people.csv")
    client.force_login(user_for(SUPPORT))
    listing = client.get(reverse("admin:members_importjob_changelist")).content.decode()
    assert "people.csv" in listing and "receipts.csv" not in listing
    form = client.get(reverse("admin:members_importjob_add")).context["form"]
    kinds = {key for key, _label in form.fields["kind"].choices}
    assert kinds == {"members", "redemptions", "voucher_uses"}
    response = client.post(reverse("admin:members_importjob_add"), {
        "kind": "purchases", "file": ContentFile(b"a,b\r\n", name="p.csv"),
    })
    assert response.status_code == 200 and "kind" in response.context["form"].errors


def test_upload_preview_confirm_and_report_through_the_screens(
    client, user_for, django_capture_on_commit_callbacks
):
    client.force_login(user_for(SUPPORT))
    content = csv_bytes([MEMBERS_HEADER_RU,
                         ["4600001", "Анна", "", "9161230001", "", "", "да", ""],
                         ["4600002", "Борис", "", "9161230002", "", "", "", ""]],
                        delimiter=";", encoding="cp1251")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:members_importjob_add"), {
            "kind": "members", "file": ContentFile(content, name="clients.csv"),
        })
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response.url == reverse(
        "admin:members_importjob_change", args=[job.pk])
    assert job.status == ImportJob.Status.PREVIEWED and job.created_by.username == "support-user"
    assert job.file_sha256 == hashlib.sha256(content).hexdigest()
    page = client.get(response.url)
    assert page.context["can_confirm"] and page.context["counts"]["new"] == 2
    assert b'http-equiv="refresh"' not in page.content
    assert Member.objects.count() == 0
    with django_capture_on_commit_callbacks(execute=True):
        confirmed = client.post(reverse("admin:members_importjob_confirm", args=[job.pk]))
    assert confirmed.status_code == 302
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE and Member.objects.count() == 2
    report = client.get(reverse("admin:members_importjob_change", args=[job.pk]))
    assert report.context["counts"]["new"] == 2 and "Анна" not in report.content.decode()


def test_confirm_is_disabled_and_refused_when_rows_have_errors(
    client, user_for, django_capture_on_commit_callbacks
):
    client.force_login(user_for(SUPPORT))
    content = csv_bytes([["card", "first name"], ["4700001", ""]])
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:members_importjob_add"),
                    {"kind": "members", "file": ContentFile(content, name="m.csv")})
    job = ImportJob.objects.get()
    page = client.get(reverse("admin:members_importjob_change", args=[job.pk]))
    text = page.content.decode()
    assert not page.context["can_confirm"]
    assert 'id="import-confirm" value="Confirm the import" disabled' in text
    assert "A new member needs a first name." in text and "<td class=\"num\">2</td>" in text
    client.post(reverse("admin:members_importjob_confirm", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == ImportJob.Status.PREVIEWED and Member.objects.count() == 0
    client.post(reverse("admin:members_importjob_cancel", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == ImportJob.Status.REJECTED and "Cancelled by support-user" in job.message


def test_job_page_refreshes_itself_while_a_worker_has_the_job(client, user_for, monkeypatch):
    # With a broker the task only gets queued: the page must show progress and come back.
    monkeypatch.setattr(import_job_preview_run, "delay", lambda *args: None)
    client.force_login(user_for("superuser"))
    client.post(reverse("admin:members_importjob_add"),
                {"kind": "members", "file": ContentFile(members_file(3), name="m.csv")})
    job = ImportJob.objects.get()
    ImportJob.objects.filter(pk=job.pk).update(status="importing", rows_total=200, rows_done=50)
    page = client.get(reverse("admin:members_importjob_change", args=[job.pk])).content.decode()
    assert '<meta http-equiv="refresh" content="2">' in page
    assert '<progress max="100" value="25">' in page and "50 of 200 rows" in page
    assert "<script" not in page.split('id="content-main"')[1]


def test_upload_over_the_size_limit_is_refused_by_the_form(client, user_for, settings):
    settings.IMPORT_MAX_BYTES = 100
    client.force_login(user_for(SUPPORT))
    response = client.post(reverse("admin:members_importjob_add"), {
        "kind": "members", "file": ContentFile(members_file(50), name="m.csv"),
    })
    assert response.status_code == 200 and not ImportJob.objects.exists()
    assert "the limit is 100 bytes" in str(response.context["form"].errors["file"])


@pytest.mark.parametrize("language, delimiter, first", [
    ("en", ",", "Card number"), ("ru", ";", "Номер карты"),
])
def test_sample_file_has_the_columns_in_the_users_language(
    client, user_for, language, delimiter, first
):
    client.force_login(user_for(SUPPORT))
    response = client.get(reverse("admin:members_importjob_template", args=["members"]),
                          headers={"accept-language": language})
    text = response.content.decode("utf-8")
    assert response["Content-Type"].startswith("text/csv") and text.startswith("\ufeff")
    header = next(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=delimiter))
    assert header[0] == first and len(header) == len(MembersKind.columns)
    # The sample imports back as it is.
    mapped = runner.columns_map(MembersKind, header)
    assert set(mapped.index) == {column.key for column in MembersKind.columns}


def test_import_screens_render_in_russian(client, user_for, staff):
    job = import_run(staff, "members", members_file(2))
    client.force_login(user_for(SUPPORT))
    for url in (reverse("admin:members_importjob_changelist"),
                reverse("admin:members_importjob_add"),
                reverse("admin:members_importjob_change", args=[job.pk])):
        response = client.get(url, headers={"accept-language": "ru"})
        assert response.status_code == 200, url


def test_import_admin_is_registered():
    assert isinstance(admin.site._registry[ImportJob], import_admin.ImportJobAdmin)


def test_import_admin_pages_open_for_a_superuser(admin_client, staff):
    """The smoke test of members/tests/test_admin.py, for imports in every state."""
    import_run(staff, "members", members_file(2))
    import_run(staff, "members", b"\x00", name="bad.csv")
    job_make(staff, "members", members_file(1), name="waiting.csv")
    changelist = reverse("admin:members_importjob_changelist")
    for params in ({}, {"q": "x"}, {"q": "+7 912"}, {"q": "a@b"}, {"status": "done"},
                   {"kind": "members"}):
        assert admin_client.get(changelist, params).status_code == 200, params
    assert admin_client.get(reverse("admin:members_importjob_add")).status_code == 200
    for job in ImportJob.objects.all():
        url = reverse("admin:members_importjob_change", args=[job.pk])
        assert admin_client.get(url).status_code == 200, job.status
    history = reverse("admin:members_importjob_history", args=[job.pk])
    assert admin_client.get(history).status_code == 200
    assert admin_client.get(reverse("admin:members_importjob_delete", args=[job.pk])
                            ).status_code == 403
    assert admin_client.get(reverse("admin:members_importjob_change", args=[10**9])
                            ).status_code == 404


def test_an_unreachable_task_queue_fails_the_job_with_a_message(
    client, user_for, monkeypatch, django_capture_on_commit_callbacks
):
    def refuse(*args):
        raise ConnectionRefusedError("no broker")

    monkeypatch.setattr(import_job_preview_run, "delay", refuse)
    client.force_login(user_for(SUPPORT))
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:members_importjob_add"),
                    {"kind": "members", "file": ContentFile(members_file(1), name="m.csv")})
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.FAILED and "check of the file stopped" in job.message
