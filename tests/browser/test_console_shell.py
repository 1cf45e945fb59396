"""The shell: served offline, signs in by token or demo identity, shows a bad token's detail."""

from __future__ import annotations

import re

import httpx

from conftest import Running


def test_console_is_served_with_its_own_assets_only(console_gateway: Running) -> None:
    page = httpx.get(f"{console_gateway.url}/console")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    # every script and stylesheet it names is the gateway's own, and served
    for asset in re.findall(r'(?:src|href)="(/[^"]+)"', page.text):
        assert asset.startswith("/console/static/"), asset
        assert httpx.get(f"{console_gateway.url}{asset}").status_code == 200
    for module in ("app.js", "ui.js", "views/department.js", "views/operator.js",
                   "views/regulator.js"):  # fmt: skip
        served = httpx.get(f"{console_gateway.url}/console/static/{module}")
        assert served.status_code == 200, module
        text = served.text.replace("http://www.w3.org/2000/svg", "")  # a name, not a fetch
        assert "http://" not in text and "https://" not in text, module
    assert httpx.get(f"{console_gateway.url}/console/static/../app.py").status_code == 404


def test_a_bad_token_shows_the_problem_detail(page, console_gateway: Running, screenshot) -> None:
    page.goto(f"{console_gateway.url}/console")
    page.fill("#token", "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln")
    page.click("#signin")
    alert = page.locator("[role=alert]")
    alert.wait_for()
    assert "token" in alert.inner_text().lower()
    assert "401" in alert.inner_text()
    screenshot(page, "sign-in")


def test_a_demo_identity_signs_in_and_sees_its_role(page, console_gateway: Running) -> None:
    page.goto(f"{console_gateway.url}/console")
    page.select_option("#identity", "demo-insurer")
    page.click("#demo-signin")
    page.wait_for_selector("#who:has-text('demo-insurer')")
    nav = page.locator("nav").inner_text()
    assert "Operator" in nav and "Department" not in nav and "Regulator" not in nav
    assert page.url.endswith("#/operator")
