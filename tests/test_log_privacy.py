"""Nothing personal in any log line, whichever library writes it.

The attacker here is not the operator but whoever reads the gateway's log (an operations
team, a log collector, a backup): an operator's requests carry personal data (an ID
number, a name, an income), and every error path of every kind is driven with them. The
whole log the process wrote, stdout and stderr, at the debug level and in both forms, is
then searched for each value: the reader must be left with none of them.

Before: sqlglot's warning logger wrote the SQL of an ``EXPLAIN …`` or ``SHOW '…'`` query,
literals and all, and onnxruntime's C++ logger wrote a submitted model's initializer
names straight to stderr.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import jwt
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from onnx import TensorProto, helper, numpy_helper

from conftest import start_beside, stop_gateway
from dataauth.sdk.he import HEClient, LinearModel, make_context

pytestmark = pytest.mark.slow

ID_NUMBER, NAME, INCOME = "110101199003074518", "王秀英", "23456.78"
PERSONAL = (ID_NUMBER, NAME, INCOME)
WHERE = f"resident_id = '{ID_NUMBER}' AND name = '{NAME}' AND monthly_income >= {INCOME}"

SECRET = make_context()
HE_MODEL = LinearModel(["properties_owned"], [1.0], 0.0)
MANIFEST = json.loads((Path(__file__).parent / "data" / "credit_model.json").read_text("utf-8"))


STATEMENTS = [
    f"SELECT district, COUNT(*) FROM residents WHERE {WHERE} GROUP BY",  # malformed
    f"SELECT district, COUNT(*) FROM residents WHERE {WHERE} GROUP BY district",
    f"EXPLAIN SELECT COUNT(*) FROM residents WHERE {WHERE}",
    f"SHOW '{NAME} {ID_NUMBER} {INCOME}'",
    f"SET @who = '{ID_NUMBER}'",
    f"PRAGMA key = '{NAME}{INCOME}'",
    f"SELECT COUNT(*) FROM residents WHERE {WHERE}; DELETE FROM residents",
    f"SELECT name, monthly_income FROM residents WHERE resident_id = '{ID_NUMBER}'",
    f"SELECT COUNT(*) FROM residents WHERE name = '{NAME}' QUALIFY {INCOME} > 1",
    f"SELECT COUNT(*) FROM residents_{ID_NUMBER} WHERE x = '{NAME}'",
    f"WITH t AS (SELECT '{NAME}' AS n) SELECT COUNT(*) FROM t WHERE n >= {INCOME}",
    f"SELECT COUNT(*) FROM residents WHERE name = U&'{NAME}' UESCAPE '{INCOME}'",
]


def foreign_token(claims: dict) -> str:
    """A well-formed EdDSA token from an issuer the gateway does not trust."""
    return jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA",
                      headers={"kid": ID_NUMBER})  # fmt: skip


def model_naming_the_subject() -> bytes:
    """An ONNX graph whose node, tensor and unused initializer are named with the personal
    values (onnxruntime logs an unused initializer's name as it drops it)."""
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])
    weights = numpy_helper.from_array(np.ones((3, 2), np.float32), f"w_{NAME}")
    unused = numpy_helper.from_array(np.ones(1, np.float32), f"id_{ID_NUMBER}_{INCOME}")
    node = helper.make_node("MatMul", ["X", f"w_{NAME}"], ["probabilities"], name=ID_NUMBER)
    graph = helper.make_graph([node], NAME, [x], [y], [weights, unused], doc_string=INCOME)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.producer_name = f"{NAME} {ID_NUMBER}"
    return model.SerializeToString()


def he_registration(url: str, token: str) -> tuple[str, str]:
    """A real context and encrypted model, so that bad ciphertexts reach deserialization."""
    with HEClient(url, token) as client:
        context = client.register_context(SECRET)
        return context, client.register_model("he-credit-score", context, HE_MODEL, SECRET)


def probe(url: str, token: str) -> list[int]:
    """Every error path we know of, each carrying the personal values; the statuses."""
    bearer = {"Authorization": f"Bearer {token}"}
    statuses = []

    def send(method: str, path: str, **kwargs: object) -> None:
        kwargs.setdefault("headers", bearer)
        response = httpx.request(method, f"{url}{path}", timeout=60, **kwargs)
        statuses.append(response.status_code)
        # the answer itself may quote nothing personal either, but that is not this test's
        # (problems quote the field, not the value: test_bad_input)

    for sql in STATEMENTS:
        send("POST", "/v1/query", json={"purpose": "credit", "sql": sql})
    subject = {"key": ID_NUMBER, "claims": {"name": NAME}}
    send("POST", "/v1/verify/identity-match", json={"purpose": "credit", "subjects": [subject]})
    for claims in ({"threshold": f"{INCOME}元"}, {"threshold": INCOME, "name": NAME},
                   {"threshold": {NAME: INCOME}}, {"threshold": float(INCOME) * 1e9}):  # fmt: skip
        body = {"purpose": "credit", "subjects": [{"key": ID_NUMBER, "claims": claims}]}
        send("POST", "/v1/verify/income-at-least", json=body)
    body = {"purpose": "credit", "subjects": [subject]}
    send("POST", f"/v1/verify/{ID_NUMBER}", json=body)  # unknown products
    send("POST", f"/v1/verify/{NAME}-{INCOME}", json=body)
    send("POST", f"/v1/verify/identity-match?who={ID_NUMBER}&name={NAME}", json=body)
    cut = f'{{"purpose": "credit", "x": "{NAME}{ID_NUMBER}'
    send("POST", "/v1/verify/identity-match", content=cut.encode(),
         headers={**bearer, "content-type": "application/json"})  # fmt: skip
    send("POST", "/v1/verify/identity-match", content=f"{NAME}{ID_NUMBER}{INCOME}".encode(),
         headers={**bearer, "content-type": "text/plain"})  # fmt: skip
    for bad in (f"{ID_NUMBER}.{NAME}.{INCOME}", foreign_token({"sub": ID_NUMBER, "name": NAME})):
        consented = {"key": ID_NUMBER, "consent": bad}
        send("POST", "/v1/verify/income-band", json={"purpose": "credit", "subjects": [consented]})
    # invalid operator tokens: garbage, a foreign issuer's, in the header itself
    for bad in (f"{ID_NUMBER}-{NAME}", foreign_token({"sub": NAME, "iss": ID_NUMBER})):
        send("POST", "/v1/verify/identity-match", json=body,
             headers={"Authorization": f"Bearer {bad}".encode()})  # fmt: skip
    send("GET", "/v1/products", headers={"Authorization": f"Basic {NAME}{ID_NUMBER}".encode()})
    # oversized batches and bodies
    many = {"purpose": "credit", "subjects": [subject] * 10_001}
    send("POST", "/v1/verify/identity-match", json=many)
    huge = json.dumps({"purpose": "credit", "subjects": [subject] * 60_000}, ensure_ascii=False)
    send("POST", "/v1/verify/identity-match", content=huge.encode(),
         headers={**bearer, "content-type": "application/json"})  # fmt: skip
    # encrypted scoring: malformed contexts and ciphertexts
    junk = base64.b64encode(f"{NAME}{ID_NUMBER}{INCOME}".encode()).decode()
    send("POST", "/v1/he/contexts", json={"context": junk})
    send("POST", "/v1/he/contexts", json={"context": f"{NAME}{ID_NUMBER}"})
    send("POST", "/v1/he/models", json={"product": "he-credit-score", "context": ID_NUMBER,
                                        "weights": [junk], "bias": NAME})  # fmt: skip
    score = {"purpose": "credit", "context": "c-0", "model": "m-0", "weights": [junk, NAME],
             "bias": junk, "subjects": [{"key": ID_NUMBER}]}  # fmt: skip
    send("POST", "/v1/he/score", json=score)
    context, model_id = he_registration(url, token)
    score = {**score, "context": context, "model": model_id}
    send("POST", "/v1/he/score", json=score)
    send("POST", "/v1/he/score", json={**score, "weights": [junk]})
    # an aggregate needs no consent: its ciphertexts reach deserialization after the allow
    cohort = {**score, "subjects": None, "mode": "mean", "cohort": []}
    send("POST", "/v1/he/score", json=cohort)
    send("POST", "/v1/he/score", json={**cohort, "weights": [junk], "bias": NAME})
    send("POST", "/v1/he/score", json={**score, "subjects": None, "mode": "mean",
         "cohort": [{"column": "name", "op": "eq", "value": NAME}]})  # fmt: skip
    # models: a malformed ONNX file, one naming the subject, runs of unknown models
    named = {**MANIFEST, "name": "leak-probe", "title": f"{NAME} {ID_NUMBER} {INCOME}"}
    for manifest in ({**MANIFEST, "name": NAME, "output": ID_NUMBER}, named):
        for content in (f"{NAME}{ID_NUMBER}{INCOME}".encode(), model_naming_the_subject()):
            model = {"manifest": manifest, "onnx": base64.b64encode(content).decode()}
            send("POST", "/v1/models", json=model)
    send("POST", f"/v1/models/m-{ID_NUMBER}/run", json={"purpose": "credit", "subjects": [subject]})
    send("GET", f"/v1/models/{NAME}")
    send("GET", f"/v1/audit/entries?operator={ID_NUMBER}&limit={INCOME}")
    send("GET", f"/v1/audit/proof/inclusion?index={ID_NUMBER}")
    return statuses


@pytest.fixture(scope="module", params=["json", "text"])
def noisy(gateway, tmp_path_factory, request):
    """A gateway beside the session's, logging at debug: every library's chatter on."""
    env = {"DATAAUTH_LOG_LEVEL": "debug", "DATAAUTH_LOG_FORMAT": request.param}
    running = start_beside(gateway, tmp_path_factory.mktemp(f"logs-{request.param}"), env=env)
    yield running
    stop_gateway(running)


def test_no_error_path_writes_personal_data_to_the_log(noisy):
    statuses = probe(noisy.url, noisy.token())
    assert all(status < 500 for status in statuses), statuses
    assert {400, 401, 404, 413, 422} <= set(statuses)
    stop_gateway(noisy)  # a shutdown writes its lines too
    whole = noisy.log.read_text(encoding="utf-8", errors="replace")
    assert "listening" in whole  # the log is this gateway's
    found = {value: whole.count(value) for value in PERSONAL}
    assert found == dict.fromkeys(PERSONAL, 0), [
        line for line in whole.splitlines() if any(v in line for v in PERSONAL)
    ][:5]
