"""Operations and hostile conditions: metrics, logs with nothing personal, security
headers, and a slow or failing department database answered in time."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from conftest import start_beside, stop_gateway

pytestmark = pytest.mark.slow

RESIDENT, NAME = "440115195011083222", "陈丽"


def verify(url: str, token: str, n: int = 1) -> httpx.Response:
    body = {"purpose": "credit", "subjects": [{"key": RESIDENT, "claims": {"name": NAME}}] * n}
    return httpx.post(f"{url}/v1/verify/identity-match", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {token}"})  # fmt: skip


def test_security_headers_on_answers_and_refusals(client, auth):
    for response in (
        client.post("/v1/verify/identity-match", json={"purpose": "credit"}, headers=auth()),
        client.get("/v1/products", headers=auth()),
        client.get("/no-such-route"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"


def metric(text: str, name: str) -> float:
    """The sum of one metric's samples whose line starts with ``name``."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name))  # fmt: skip


def test_metrics_count_requests_decisions_and_audit_lag(gateway, client, auth):
    before = client.get("/metrics").text
    assert verify(gateway.url, gateway.token()).status_code == 200
    assert verify(gateway.url, gateway.token("demo-expired")).status_code == 403
    after = client.get("/metrics")
    assert after.status_code == 200 and after.headers["content-type"].startswith("text/plain")
    text = after.text
    released = 'dataauth_decisions_total{kind="verify",outcome="released"}'
    denied = 'dataauth_decisions_total{kind="verify",outcome="denied"}'
    assert metric(text, released) == metric(before, released) + 1
    assert metric(text, denied) == metric(before, denied) + 1
    assert 'route="/v1/verify/{product}"' in text  # the route's template, not the path sent
    assert "dataauth_request_seconds_bucket" in text
    assert metric(text, "dataauth_audit_entries ") >= 2
    assert "dataauth_audit_unsigned_entries" in text
    assert RESIDENT not in text and NAME not in text


def test_metrics_can_require_a_bearer_token(gateway, tmp_path):
    guarded = start_beside(gateway, tmp_path, env={"DATAAUTH_METRICS_TOKEN": "scrape-secret"})
    try:
        for sent in (None, "Bearer wrong", "scrape-secret", f"Bearer {guarded.token()}"):
            headers = {"Authorization": sent} if sent else {}
            response = httpx.get(f"{guarded.url}/metrics", headers=headers)
            assert response.status_code == 401, sent
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"] == "metrics_unauthorized"
            assert "scrape-secret" not in response.text
        response = httpx.get(f"{guarded.url}/metrics",
                             headers={"Authorization": "Bearer scrape-secret"})  # fmt: skip
        assert response.status_code == 200 and "dataauth_requests_total" in response.text
        assert "scrape-secret" not in guarded.log.read_text()
    finally:
        stop_gateway(guarded)


def test_logs_are_json_and_hold_nothing_personal(gateway):
    for operator in ("demo-bank", "demo-expired"):
        verify(gateway.url, gateway.token(operator))
    httpx.post(f"{gateway.url}/v1/verify/identity-match", content=f'{{"x": "{RESIDENT}"',
               headers={"Authorization": f"Bearer {gateway.token()}"})  # fmt: skip
    lines = [line for line in gateway.log.read_text().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert any(r.get("route") == "/v1/verify/{product}" and r["status"] == 403 for r in records)
    whole = gateway.log.read_text()
    assert RESIDENT not in whole and NAME not in whole and "Bearer" not in whole


def test_a_slow_department_database_is_a_timely_504(gateway, tmp_path):
    """A statement past DATAAUTH_DOMAIN_TIMEOUT_MS is interrupted, answered and logged."""
    slow = start_beside(gateway, tmp_path, env={"DATAAUTH_DOMAIN_TIMEOUT_MS": "0.001"})
    try:
        response = verify(slow.url, slow.token(), n=1000)
        assert response.status_code == 504, response.text
        problem = response.json()
        assert problem["code"] == "domain_timeout"
        assert isinstance(problem["audit"]["entry"], int)  # the failure is on the record
    finally:
        stop_gateway(slow)


def test_an_unreachable_department_database_is_a_timely_503(gateway, tmp_path):
    nowhere = "postgresql+psycopg://nobody:nothing@127.0.0.1:9/none"
    broken = start_beside(gateway, tmp_path, env={"DATAAUTH_DOMAIN_URL": nowhere})
    try:
        response = verify(broken.url, broken.token())
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "domain_unavailable"
        assert response.elapsed.total_seconds() < 10
        assert verify(broken.url, broken.token()).status_code == 503  # and again, no hang
    finally:
        stop_gateway(broken)


def test_a_trickled_body_gets_a_408_and_the_gateway_serves_on(gateway, tmp_path):
    """A client that sends its headers and then only part of its body is answered 408 once
    the body timeout passes, with a problem, and the gateway goes on serving others."""
    slow = start_beside(gateway, tmp_path, env={"DATAAUTH_BODY_TIMEOUT_SECONDS": "1"})
    try:
        host, port = slow.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            head = (f"POST /v1/verify/identity-match HTTP/1.1\r\nHost: {host}\r\n"
                    f"Authorization: Bearer {slow.token()}\r\n"
                    "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n")  # fmt: skip
            sock.sendall(head.encode() + b'{"purpose": "cre')
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        status, _, rest = answer.partition(b"\r\n")
        assert status.startswith(b"HTTP/1.1 408"), answer
        headers, _, body = rest.partition(b"\r\n\r\n")
        assert b"content-type: application/problem+json" in headers.lower()
        assert json.loads(body)["code"] == "body_timeout"
        assert verify(slow.url, slow.token()).status_code == 200
    finally:
        stop_gateway(slow)
