"""The department's console, in Chromium against a real gateway: every change it makes
is the audited API call, and takes effect on the operators' calls."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from conftest import Running

DATA = Path(__file__).resolve().parents[1] / "data"
SUBJECTS = ["440115195011083222", "440117200612067742", "440113200009301818"]


def verify(gateway: Running, subjects: list[str], operator: str = "demo-bank") -> httpx.Response:
    body = {
        "purpose": "credit",
        "subjects": [{"key": key, "claims": {"threshold": 3000}} for key in subjects],
    }
    token = gateway.token(operator)
    return httpx.post(f"{gateway.url}/v1/verify/income-at-least", json=body,
                      headers={"Authorization": f"Bearer {token}"}, timeout=30)  # fmt: skip


def test_a_reclassified_column_denies_the_product_that_compares_it(
    page: Page, console_gateway: Running, sign_in, screenshot, department_api, browser_context
) -> None:
    assert verify(console_gateway, SUBJECTS[:1]).status_code == 200
    sign_in(page)
    page.goto(f"{console_gateway.url}/console#/department/catalog")
    page.check("[data-use='residents.monthly_income.compare']")  # wait for the table
    screenshot(page, "department-catalog")
    page.uncheck("[data-use='residents.monthly_income.compare']")
    page.click("#publish-catalog")
    warnings = page.locator("#catalog-warnings")
    expect(warnings).to_contain_text("income-at-least")
    published = page.locator(".ok").inner_text()
    assert "audit entry" in published
    # the operator, in its own console, is now denied
    operator = browser_context.new_page()
    sign_in(operator, "demo-bank")
    operator.click("#product-income-at-least summary")
    operator.fill("#key-income-at-least", SUBJECTS[0])
    operator.select_option("#claim-income-at-least-threshold", "3000")
    operator.click("#product-income-at-least button[type=submit]")
    denial = operator.locator("#answer-income-at-least [role=alert]")
    expect(denial).to_contain_text("403")
    assert "monthly_income" in denial.inner_text() or "compare" in denial.inner_text()
    screenshot(operator, "operator-denied")
    operator.close()
    # and so is the API: the same decision, from the same catalog
    assert verify(console_gateway, SUBJECTS[:1]).status_code == 403
    entries = department_api.get("/v1/admin/catalog").json()
    column = next(
        c
        for d in entries["datasets"]
        if d["id"] == "residents"
        for c in d["columns"]
        if c["name"] == "monthly_income"
    )
    assert "compare" not in column["uses"]
    column["uses"] = ["compare", "aggregate", "feature"]
    restored = department_api.put(
        "/v1/admin/catalog",
        json={"datasets": [d for d in entries["datasets"] if d["id"] == "residents"]},
    )
    assert restored.status_code == 200, restored.text


def test_a_refused_catalog_shows_each_problem_where_it_is(
    page: Page, console_gateway: Running, sign_in, screenshot
) -> None:
    sign_in(page)
    page.goto(f"{console_gateway.url}/console#/department/catalog")
    page.uncheck("[data-use='residents.resident_id.key']")
    page.click("#publish-catalog")
    expect(page.locator("[role=alert]")).to_contain_text("catalog_invalid")
    row_error = page.locator("tr:has([data-use='residents.resident_id.key']) .field-error")
    expect(row_error).to_contain_text("does not allow the key use")
    screenshot(page, "department-catalog-refused")


def test_what_if_then_publish(
    page: Page, console_gateway: Running, sign_in, screenshot, department_api
) -> None:
    assert verify(console_gateway, SUBJECTS).status_code == 200  # a batch of three
    before = department_api.get("/v1/admin/policy").json()["digest"]
    sign_in(page)
    page.goto(f"{console_gateway.url}/console#/department/policy")
    page.select_option("#policy-file", "data.json")
    editor = page.locator("#policy-editor")
    text = editor.input_value()
    assert '"batch_limit": 1000' in text
    editor.fill(text.replace('"batch_limit": 1000', '"batch_limit": 2', 1))
    expect(page.locator("#policy-diff .diff-add")).to_contain_text('"batch_limit": 2')
    assert page.locator("#publish-policy").is_disabled()  # not before a what-if
    page.click("#run-whatif")
    summary = page.locator("#whatif-summary")
    expect(summary).to_contain_text("would change")
    changed = int(summary.inner_text().split(" of ")[0].split()[-1])
    assert changed >= 1
    expect(page.locator("#whatif-report svg.chart rect.bar-b").first).to_be_attached()
    expect(page.locator("#whatif-report table")).to_contain_text("demo-bank")
    screenshot(page, "department-policy-whatif")
    page.click("#publish-policy")
    expect(page.locator(".ok")).to_contain_text("audit entry")
    after = department_api.get("/v1/admin/policy").json()["digest"]
    assert after != before
    assert page.locator("#policy-digest").inner_text() == after
    # in force: the batch of three is over the new limit
    assert verify(console_gateway, SUBJECTS).status_code == 403


def test_approve_a_submitted_model(
    page: Page, console_gateway: Running, sign_in, screenshot, department_api
) -> None:
    body = {
        "manifest": json.loads((DATA / "credit_model.json").read_text(encoding="utf-8")),
        "onnx": base64.b64encode((DATA / "credit_model.onnx").read_bytes()).decode(),
    }
    bank = console_gateway.token("demo-bank")
    submitted = httpx.post(f"{console_gateway.url}/v1/models", json=body,
                           headers={"Authorization": f"Bearer {bank}"}, timeout=60)  # fmt: skip
    assert submitted.status_code == 201, submitted.text
    model = submitted.json()["id"]
    sign_in(page)
    page.goto(f"{console_gateway.url}/console#/department/models")
    page.click(f"[data-model='{model}']")
    expect(page.locator("#model-status")).to_have_text("pending")
    expect(page.locator("#leakage")).to_contain_text("{")
    screenshot(page, "department-model-review")
    page.fill("#approve-note", "reviewed in the console")
    page.click("#approve")
    expect(page.locator("#model-status")).to_have_text("approved")
    shown = department_api.get("/v1/models", params={"status": "approved"}).json()["models"]
    approved = next(m for m in shown if m["id"] == model)
    assert approved["review"]["reason"] == "reviewed in the console"
    assert approved["review"]["conditions"]["max_runs"] == 1000
