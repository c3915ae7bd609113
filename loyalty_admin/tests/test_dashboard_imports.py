"""Marketing spend from a manager's file: the import kind, its checks, idempotency."""

from datetime import date
from decimal import Decimal

import pytest
from django.utils import timezone

from loyalty_admin.models import MarketingSpend
from members.importing.registry import kind_get, kinds_for_user
from members.models import ImportJob
from members.roles import ANALYST, MARKETING_MANAGER
from rewards.tests.test_imports import csv_bytes, import_run, xlsx_bytes

pytestmark = pytest.mark.django_db


def test_the_kind_is_registered_for_managers_only(role_user):
    assert kind_get("marketing_spend") is not None
    assert "marketing_spend" in [k.key for k in kinds_for_user(role_user(MARKETING_MANAGER))]
    assert "marketing_spend" not in [k.key for k in kinds_for_user(role_user(ANALYST))]


def test_a_russian_excel_file_imports_once(role_user):
    manager = role_user(MARKETING_MANAGER)
    content = csv_bytes([
        ["Месяц", "Канал", "Сумма"],
        ["01.2025", "Реклама", "12 500,50"],
        ["2025-02", "Реклама", "9000"],
        ["15.03.2025", "", "1 000"],
    ], delimiter=";", encoding="cp1251")
    job = import_run(manager, "marketing_spend", content)
    assert job.status == ImportJob.Status.DONE, (job.message, job.errors)
    assert job.counts["new"] == 3
    assert sorted(MarketingSpend.objects.values_list("month", "channel", "amount")) == [
        (date(2025, 1, 1), "Реклама", Decimal("12500.50")),
        (date(2025, 2, 1), "Реклама", Decimal("9000.00")),
        (date(2025, 3, 1), "", Decimal("1000.00")),
    ]
    again = import_run(manager, "marketing_spend", content)
    assert again.counts["unchanged"] == 3 and MarketingSpend.objects.count() == 3


def test_a_changed_amount_updates_the_month(role_user):
    manager = role_user(MARKETING_MANAGER)
    import_run(manager, "marketing_spend", xlsx_bytes([["month", "amount"], ["2025-01", 100]]),
               name="spend.xlsx")
    job = import_run(manager, "marketing_spend",
                     xlsx_bytes([["month", "amount"], ["2025-01", 250]]), name="spend2.xlsx")
    assert job.counts["updated"] == 1
    assert MarketingSpend.objects.get().amount == Decimal("250")


def test_bad_rows_say_where_and_import_nothing(role_user):
    manager = role_user(MARKETING_MANAGER)
    next_year = timezone.localdate().year + 1
    job = import_run(manager, "marketing_spend", csv_bytes([
        ["month", "amount"],
        ["2025-01", "100"],
        ["13.2025", "100"],
        [f"{next_year}-01", "100"],
        ["2025-04", "-5"],
    ]))
    assert job.status == ImportJob.Status.REJECTED
    errors = {(e["row"], e["column"]) for e in job.errors}
    assert errors == {(3, "month"), (4, "month"), (5, "amount")}
    assert MarketingSpend.objects.count() == 0
