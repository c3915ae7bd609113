"""Answers from an external survey tool's CSV: preview, row errors, idempotent."""

import csv
import hashlib
import io
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from members.importing import runner
from members.importing.registry import kind_get
from members.models import ImportJob
from members.tests.factories import MemberFactory
from surveys.models import FollowUp, Response

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def csv_bytes(rows, delimiter=";") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


def import_run(user, content: bytes, *, skip_bad_rows=False) -> ImportJob:
    job = ImportJob(kind="survey_answers", original_name="answers.csv", file_size=len(content),
                    file_sha256=hashlib.sha256(content).hexdigest(), created_by=user,
                    skip_bad_rows=skip_bad_rows)
    job.file.save("answers.csv", ContentFile(content), save=False)
    job.save()
    runner.import_job_preview(job)
    if job.status == ImportJob.Status.PREVIEWED:
        runner.import_job_confirm(job)
        runner.import_job_apply(job)
    return job


def day(days_ago: int) -> str:
    return (timezone.localdate() - timedelta(days=days_ago)).strftime("%d.%m.%Y")


def test_the_kind_is_registered_for_operations(role_user):
    from members.roles import OPERATIONS, SUPPORT

    kind = kind_get("survey_answers")
    assert kind is not None
    assert kind.has_permission(role_user(OPERATIONS, "ops"))
    assert not kind.has_permission(role_user(SUPPORT, "sup"))


def test_answers_by_card_or_email_in_russian_headers_once(admin_user, nps_survey, csat_survey):
    olga = MemberFactory(card_number="2000000000011", email="olga@example.com")
    ivan = MemberFactory(card_number="2000000000012", email="ivan@example.com")
    content = csv_bytes([
        ["Код опроса", "Номер карты", "E-mail", "Оценка", "Комментарий", "Дата"],
        ["nps-test", "2000000000011", "", "9", "Всё отлично", day(3)],
        ["NPS-TEST", "", "IVAN@example.com", "3", "Долго ждал в очереди", day(2)],
        ["csat-test", "2000000000012", "", "5", "", day(1)],
    ])
    job = import_run(admin_user, content)
    assert job.status == ImportJob.Status.DONE, job.errors
    assert job.counts["new"] == 3
    scores = sorted(Response.objects.values_list("member_id", "survey__code", "score"))
    assert scores == sorted([(olga.pk, "nps-test", 9), (ivan.pk, "nps-test", 3),
                             (ivan.pk, "csat-test", 5)])
    assert FollowUp.objects.get().member == ivan  # the detractor
    assert Response.objects.get(score=3).sentiment == "negative"
    again = import_run(admin_user, content)
    assert again.counts["unchanged"] == 3 and again.counts["new"] == 0
    assert Response.objects.count() == 3 and FollowUp.objects.count() == 1


def test_every_bad_row_is_named_and_nothing_is_imported(admin_user, nps_survey, csat_survey):
    MemberFactory(card_number="2000000000011", email="twin@example.com")
    MemberFactory(card_number="2000000000012", email="twin@example.com")
    content = csv_bytes([
        ["survey", "card", "email", "score", "comment", "date"],
        ["nps-test", "2000000000011", "", "9", "fine", day(1)],
        ["nope", "2000000000011", "", "9", "", day(1)],
        ["nps-test", "9999", "", "9", "", day(1)],
        ["nps-test", "", "twin@example.com", "9", "", day(1)],
        ["nps-test", "2000000000011", "", "11", "", day(2)],
        ["csat-test", "2000000000011", "", "0", "", day(2)],
        ["nps-test", "", "", "5", "", day(2)],
        ["nps-test", "2000000000012", "", "5", "", "31.02.2026"],
    ])
    job = import_run(admin_user, content)
    assert job.status == ImportJob.Status.REJECTED
    errors = {(error["row"], error["column"]): error["message"] for error in job.errors}
    assert errors[(3, "survey")] == "There is no survey with the code “nope”."
    assert errors[(4, "card")] == "There is no member with the card number “9999”."
    assert "2 members have the e-mail" in errors[(5, "email")]
    assert errors[(6, "score")] == "The score must be a whole number from 0 to 10."
    assert errors[(7, "score")] == "The score must be a whole number from 1 to 5."
    assert errors[(8, "card")] == "Give the member's card number or e-mail."
    assert "is not a date" in errors[(9, "date")]
    assert Response.objects.count() == 0 and FollowUp.objects.count() == 0
