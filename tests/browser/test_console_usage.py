"""The console's usage and budgets, for a department (every operator) and an operator
(its own only), and the department's list of HE filings (算法备案)."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from conftest import Running

INSURED = {"purpose": "underwriting",
           "subjects": [{"key": "440115195011083222", "claims": {"threshold": 12}},
                        {"key": "110101198001010011", "claims": {"threshold": 12}}]}  # fmt: skip


def insure(gateway: Running) -> None:
    token = gateway.token("demo-insurer")
    answered = httpx.post(f"{gateway.url}/v1/verify/social-insurance-at-least", json=INSURED,
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)  # fmt: skip
    assert answered.status_code == 200, answered.text


def quota_used(page: Page) -> int:
    row = page.locator("#usage-demo-insurer tbody tr", has_text="social-insurance-at-least")
    return int(row.locator("td").nth(3).inner_text().split()[0])


def test_the_department_sees_an_operators_usage_go_up(
    page: Page, console_gateway: Running, sign_in, screenshot
) -> None:
    insure(console_gateway)
    sign_in(page)
    page.goto(f"{console_gateway.url}/console#/department/usage")
    expect(page.locator("#usage-demo-insurer")).to_contain_text("social-insurance-at-least")
    before = quota_used(page)
    insure(console_gateway)
    page.reload()
    expect(page.locator("#usage-demo-insurer")).to_contain_text("/ 10000")
    assert quota_used(page) == before + 2
    panel = page.locator("#usage-demo-insurer")
    expect(panel).to_contain_text("left")
    expect(panel.locator(".disclosure")).to_contain_text("subjects told about")
    # the chart over time is drawn, today's column among its rects
    chart = page.locator("#days-demo-insurer svg.chart")
    expect(chart).to_be_visible()
    assert chart.locator("rect[data-label]").count() >= 1
    expect(page.locator("#days-all svg.chart")).to_be_visible()
    # counts only: no subject's keyed hash is on the page
    assert "hmac" not in page.content() and "sha256:" not in panel.inner_text()
    screenshot(page, "department-usage")


def test_an_operator_sees_its_own_usage_and_not_anothers(
    page: Page, console_gateway: Running, sign_in, screenshot
) -> None:
    insure(console_gateway)
    sign_in(page, "demo-bank")
    page.goto(f"{console_gateway.url}/console#/operator/usage")
    expect(page.locator("#usage-demo-bank")).to_be_visible()
    text = page.locator("main").inner_text()
    assert "demo-insurer" not in text and "social-insurance-at-least" not in text
    assert page.locator(".usage").count() == 1
    page.click("#signout")
    sign_in(page, "demo-insurer")
    page.goto(f"{console_gateway.url}/console#/operator/usage")
    expect(page.locator("#usage-demo-insurer")).to_contain_text("social-insurance-at-least")
    assert "demo-bank" not in page.locator("main").inner_text()
    expect(page.locator("#days-demo-insurer svg.chart")).to_be_visible()
    screenshot(page, "operator-usage")


def test_the_department_lists_he_filings(
    page: Page, console_gateway: Running, sign_in, screenshot
) -> None:
    from dataauth.sdk.he import HEClient, LinearModel, make_context
    from test_he import FEATURES, PRODUCT

    secret = make_context()
    model = LinearModel(FEATURES, [0.0004, 0.02, 0.5], -3.0)
    with HEClient(console_gateway.url, console_gateway.token("demo-bank")) as bank:
        context = bank.register_context(secret)
        model_id = bank.register_model(PRODUCT, context, model, secret)
    sign_in(page)
    page.goto(f"{console_gateway.url}/console#/department/filings")
    filed = page.locator(f"#dept-filings td code[title='{model_id}']")
    expect(filed).to_be_visible()
    expect(page.locator(f"#dept-filings code[title='{model.commitment()}']")).to_be_visible()
    expect(page.locator(f"#dept-filings code[title='{context}']").first).to_be_visible()
    screenshot(page, "department-he-filings")


def test_an_operator_checks_its_receipt_in_the_browser(
    page: Page, console_gateway: Running, sign_in, screenshot
) -> None:
    insure(console_gateway)
    sign_in(page, "demo-insurer")
    page.goto(f"{console_gateway.url}/console#/operator/receipts")
    first = page.locator("#op-receipts tbody tr").first
    expect(first).to_be_visible()
    index = first.locator("button[data-index]").get_attribute("data-index")
    first.locator("button[data-index]").click()
    result = page.locator(f"#check-{index}")
    expect(result).to_have_attribute("data-ok", "true")
    expect(result).to_contain_text("checked in this browser")
    screenshot(page, "operator-receipt-checked")
