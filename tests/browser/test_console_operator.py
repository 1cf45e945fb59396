"""The operator's console: its licence and products, and only its own receipts."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from conftest import Running


def test_an_operator_sees_its_licence_and_only_its_own_entries(
    page: Page, console_gateway: Running, sign_in, screenshot
) -> None:
    bank = console_gateway.token("demo-bank")
    body = {"purpose": "credit",
            "subjects": [{"key": "440115195011083222", "claims": {"threshold": 3000}}]}  # fmt: skip
    answered = httpx.post(f"{console_gateway.url}/v1/verify/income-at-least", json=body,
                          headers={"Authorization": f"Bearer {bank}"}, timeout=30)  # fmt: skip
    assert answered.status_code == 200
    sign_in(page, "demo-insurer")
    expect(page.locator("#licence")).to_contain_text("active")
    products = page.locator(".product")
    expect(products.first).to_be_visible()
    ids = [p.get_attribute("id") for p in products.all()]
    assert ids == ["product-identity-match", "product-social-insurance-at-least"]
    screenshot(page, "operator-licence")
    # an attempt of its own, then its receipts: its entry, none of the bank's
    page.click("#product-social-insurance-at-least summary")
    page.fill("#key-social-insurance-at-least", "440115195011083222")
    page.click("#product-social-insurance-at-least button[type=submit]")
    expect(page.locator("#answer-social-insurance-at-least")).to_contain_text("audit entry")
    page.goto(f"{console_gateway.url}/console#/operator/receipts")
    rows = page.locator("#op-receipts tbody tr")
    expect(rows.first).to_be_visible()
    assert "demo-insurer" in page.locator("#op-receipts").inner_text()
    assert "demo-bank" not in page.locator("main").inner_text()
    screenshot(page, "operator-receipts")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "operator-receipts-phone")
