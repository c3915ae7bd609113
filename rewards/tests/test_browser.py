"""A marketing manager sets up the programme in a real browser (headless Chromium)."""

from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from members.models import ProductCategory
from members.services import PurchaseLineData
from members.tests.browser import log_in
from members.tests.factories import MemberFactory, StoreFactory
from rewards.models import EarningRule, MemberTier, Tier
from rewards.services import purchase_record

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_manager_creates_gold_and_a_coffee_multiplier_and_the_purchase_shows_its_points(
    page: Page, live_server, manager_user
):
    Tier.objects.create(name="Bronze", rank=0, threshold=0)
    coffee = ProductCategory.objects.create(code="coffee", name="Coffee")
    store = StoreFactory(code="MSK-001")
    member = MemberFactory(first_name="Olga", last_name="Smirnova", card_number="2000000000011")

    log_in(page, live_server.url, manager_user.username)

    # A Gold tier from 10,000 RUB with ×1.5 points: the impact is shown before saving.
    page.goto(f"{live_server.url}/admin/rewards/tier/add/")
    page.fill("#id_name", "Gold")
    page.fill("#id_rank", "1")
    page.fill("#id_threshold", "10000")
    page.fill("#id_earn_multiplier", "1.5")
    page.click("input[name=_save]")
    if page.locator("#impact-confirm").count():
        page.click("#impact-confirm")
    expect(page.locator(".messagelist .success")).to_be_visible()
    gold = Tier.objects.get(name="Gold")
    assert gold.earn_multiplier == Decimal("1.5")

    # Coffee earns double.
    page.goto(f"{live_server.url}/admin/rewards/earningrule/add/")
    page.fill("#id_name", "Coffee double points")
    page.select_option("#id_kind", "category")
    page.select_option("#id_category", str(coffee.pk))
    page.fill("#id_multiplier", "2")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist .success")).to_be_visible()
    assert EarningRule.objects.filter(kind="category", category=coffee).exists()

    # The cash register sends a 12,000 RUB receipt: 2,000 of coffee, 10,000 of the rest.
    recording = purchase_record(
        store_id=store.pk, receipt_number="R-100", total=Decimal("12000"),
        member_id=member.pk,
        lines=[PurchaseLineData(sku="COF-1", amount=Decimal("2000"), category_id=coffee.pk),
               PurchaseLineData(sku="OTH-1", amount=Decimal("10000"))],
    )
    # The purchase reaches Gold at once. Points (base rate 0.05 of the settings):
    # 12,000 × 0.05 = 600; before the upgrade the member was Bronze (×1), so the
    # accrual is 600 + coffee's extra 2,000 × 0.05 × (2 − 1) = 100 → 700.
    assert recording.accrual.amount == 700
    assert MemberTier.objects.get(member=member).tier == gold

    page.goto(f"{live_server.url}/admin/members/member/{member.pk}/change/")
    ledger = page.locator("#ledger")
    expect(ledger).to_contain_text("+700")
    expect(ledger).to_contain_text("Coffee double points")
    expect(page.locator("body")).to_contain_text("Gold")
    page.screenshot(path=str(ARTIFACTS / "browser-manager-programme.png"), full_page=True)
