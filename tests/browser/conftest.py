"""The console in a real browser: Debian's Chromium, driven by Playwright, against a
real demo gateway over HTTP (its own database, beside the session's).

Playwright's own browser downloads are never used: the machine's Chromium is
(``.ci/run`` installs it where it is missing). Without one the tests skip, or fail
where ``DATAAUTH_TEST_REQUIRE_BROWSER`` is set, as CI sets it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright

from conftest import Running, start_beside, stop_gateway

CHROMIUM = os.environ.get("DATAAUTH_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def _missing(why: str) -> None:
    if os.environ.get("DATAAUTH_TEST_REQUIRE_BROWSER") == "1":
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(scope="module")
def console_gateway(
    sqlite_gateway: Running, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """A demo gateway of the module's own: its tests publish catalogs and policies. The
    catalog is read again every 0.2 s, so a publication is in force at once."""
    running = start_beside(
        sqlite_gateway,
        tmp_path_factory.mktemp("console"),
        env={"DATAAUTH_CATALOG_TTL_SECONDS": "0.2"},
    )
    yield running
    stop_gateway(running)


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            args=ARGS,
            headless=True,
            viewport=LAPTOP,
            locale="en-US",
        )
        context.set_default_timeout(20_000)
        yield context
        context.close()


@pytest.fixture
def page(browser_context: BrowserContext) -> Iterator[Page]:
    """A fresh tab: its own sessionStorage, so no token of another test is signed in.
    Any script error on the page fails the test."""
    tab = browser_context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    tab.close()
    assert not errors, errors


@pytest.fixture
def sign_in(console_gateway: Running) -> Callable[..., None]:
    """Open the console and sign in by pasting a token, as a user of a real issuer would."""

    def go(page: Page, subject: str = "demo-department", roles: tuple[str, ...] = ()) -> None:
        roles = roles or (("department",) if subject == "demo-department" else ("operator",))
        token = console_gateway.token(subject, roles=roles)
        page.goto(f"{console_gateway.url}/console")
        page.fill("#token", token)
        page.click("#signin")
        page.wait_for_selector(f"#who:has-text('{subject}')")

    return go


@pytest.fixture
def screenshot() -> Callable[..., None]:
    """Save the page as docs/console/NAME.png (the pictures docs/console.md shows)."""

    def save(page: Page, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    return save


@pytest.fixture
def department_api(console_gateway: Running) -> Iterator[httpx.Client]:
    token = console_gateway.token("demo-department", roles=("department",))
    with httpx.Client(
        base_url=console_gateway.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as http:
        yield http
