"""The interactive API docs work offline: /docs (Swagger UI) and /redoc load every script,
style and icon from the gateway itself, never from a CDN, and the browser is told so."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

pytestmark = pytest.mark.slow

EXPECTED = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class References(HTMLParser):
    """The URLs a page makes the browser fetch: src and href attributes, and the
    specification's URL (Swagger UI's ``url:``, ReDoc's ``spec-url``)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href", "spec-url") and v]


def references(html: str) -> list[str]:
    parser = References()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize(("page", "script"), [("/docs", "SwaggerUIBundle"), ("/redoc", "Redoc")])
def test_the_docs_load_only_from_the_gateway(client, page, script):
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "://" not in html, "an absolute URL: the page would load it from elsewhere"
    urls = references(html)
    assert "/openapi.json" in urls or "url: '/openapi.json'" in html
    assets = [url for url in urls if url != "/openapi.json"]
    kinds = {url[url.rindex(".") :] for url in assets}
    assert {".js"} <= kinds <= set(EXPECTED), urls
    for url in assets:
        assert url.startswith("/") and not url.startswith("//"), url  # same origin
        fetched = client.get(url)
        assert fetched.status_code == 200, url
        assert fetched.headers["content-type"].startswith(EXPECTED[url[url.rindex(".") :]]), url
        if url.endswith(".js"):
            assert script in fetched.text, url
    # the browser itself refuses anything from another origin on these pages
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "http" not in policy and "*" not in policy
    assert client.get("/openapi.json").status_code == 200


def test_an_unknown_docs_asset_is_a_problem(client):
    response = client.get("/docs/assets/nothing.js")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


def test_each_operation_documents_its_authorization_header(client):
    # the operation routes read the header themselves; the document still names it
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/verify/{product}", "/v1/query", "/v1/models/{model}/run", "/v1/he/score"):
        parameters = paths[path]["post"]["parameters"]
        header = [p for p in parameters if p["in"] == "header"]
        assert [p["name"] for p in header] == ["authorization"], path
        assert header[0]["description"] == "Bearer <operator token>"
