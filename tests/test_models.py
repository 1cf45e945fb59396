"""Models (模型) over HTTP: an operator submits, a department reviews, the operator runs.

The demo credit model is the file made by tests/data/make_credit_model.py; the hostile
graphs are built here with onnx.helper. Everything runs against the real gateway.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from sqlalchemy import text

from conftest import DATABASES, on_each_database, start_with_budget, stop_gateway
from test_audit_log import dataauth

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=DATABASES)
def gateway(request):
    """Each test here runs on SQLite and on PostgreSQL."""
    return on_each_database(request)


DATA = Path(__file__).resolve().parent / "data"
MODEL = (DATA / "credit_model.onnx").read_bytes()
MANIFEST = json.loads((DATA / "credit_model.json").read_text(encoding="utf-8"))
FEATURES = MANIFEST["inputs"][0]["columns"]
EXPIRES = "2030-01-01T00:00:00Z"


def department(auth):
    return auth("demo-department", roles=("department",))


def submit(client, auth, content=MODEL, manifest=None, operator="demo-bank"):
    body = {"manifest": manifest or MANIFEST, "onnx": base64.b64encode(content).decode()}
    return client.post("/v1/models", json=body, headers=auth(operator))


def variant(**changes):
    """The demo manifest with some fields changed (a different manifest: a new id)."""
    manifest = copy.deepcopy(MANIFEST)
    manifest.update(changes)
    return manifest


def approve(client, auth, model_id, **conditions):
    body = {"expires": EXPIRES, **conditions}
    return client.post(f"/v1/models/{model_id}/approve", json=body, headers=department(auth))


def run(client, auth, model_id, operator="demo-bank", **body):
    return client.post(f"/v1/models/{model_id}/run", json={"purpose": "credit", **body},
                       headers=auth(operator))  # fmt: skip


def residents(gateway, n=3, offset=0):
    with gateway.domain_db() as db:
        return db.execute(
            # incomes of four digits or more: a value the log is searched for must be one
            # that cannot turn up by chance (a 0 would match any zero in an entry)
            f"SELECT resident_id, district, {', '.join(FEATURES)} FROM residents "
            "WHERE monthly_income >= 1000 ORDER BY resident_id LIMIT ? OFFSET ?",
            (n, offset),
        ).fetchall()


def consent(gateway, key, product="model:credit-score"):
    result = dataauth("consent", "issue", "--subject", key, "--operator", "demo-bank",
                      "--purpose", "credit", "--product", product, "--data-dir",
                      str(gateway.data_dir))  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def entries(gateway, start=0):
    with gateway.gateway_db() as db:
        rows = db.execute(
            text('SELECT canonical FROM audit_entry WHERE "index" >= :s ORDER BY "index"'),
            {"s": start},
        ).all()
    return [json.loads(r[0])["entry"] for r in rows]


def next_entry(gateway):
    with gateway.gateway_db() as db:
        return db.execute(text("SELECT COUNT(*) FROM audit_entry")).scalar()


def expected_scores(rows):
    session = ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"])
    x = np.array([r[2:] for r in rows], dtype=np.float32)
    return session.run(["probabilities"], {"X": x})[0][:, 1]


@pytest.fixture(scope="module")
def approved(client_module, auth_module):
    """The demo model, submitted and approved once for this module."""
    response = submit(client_module, auth_module)
    assert response.status_code in (200, 201), response.text
    model_id = response.json()["id"]
    response = approve(client_module, auth_module, model_id, max_runs=1000)
    assert response.status_code == 200, response.text
    return model_id


@pytest.fixture(scope="module")
def client_module(gateway):
    import httpx

    with httpx.Client(base_url=gateway.url, timeout=60) as http:
        yield http


@pytest.fixture(scope="module")
def auth_module(gateway):
    def headers(operator="demo-bank", **kwargs):
        return {"Authorization": f"Bearer {gateway.token(operator, **kwargs)}"}

    return headers


# -- the whole story, as a new user would try it -------------------------------------


def test_submit_review_score_cohort_and_audit(client, auth, gateway, tmp_path):
    start = next_entry(gateway)
    manifest = variant(title="the end-to-end walk-through")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "model.onnx").write_bytes(MODEL)
    url, data = ["--url", gateway.url], ["--data-dir", str(gateway.data_dir)]

    # the operator submits with the CLI
    result = dataauth("models", "submit", str(tmp_path / "model.onnx"), "--manifest",
                      str(tmp_path / "manifest.json"), *url, *data)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "pending" in result.stdout
    model_id = result.stdout.split()[1]

    # a pending model does not run
    response = run(client, auth, model_id, cohort={})
    assert response.status_code == 403
    assert [r["code"] for r in response.json()["reasons"]] == ["model_not_approved"]

    # the department lists, inspects and approves with the CLI
    result = dataauth("models", "list", "--status", "pending", *url, *data)
    assert model_id in result.stdout, result.stderr
    result = dataauth("models", "show", model_id, *url, *data)
    shown = json.loads(result.stdout)
    assert shown["summary"]["operators"] == {
        "ai.onnx.ml.LinearClassifier": 1,
        "ai.onnx.ml.Scaler": 1,
    }
    assert shown["summary"]["inputs"] == [{"name": "X", "type": "FLOAT", "shape": [None, 3]}]
    assert shown["summary"]["probe"] == {"copies_feature": False}
    # the department sees the weights and the leakage check, run afresh
    assert len(shown["summary"]["attributes"]) == 4
    assert shown["summary"]["leakage"]["forms"]["score"]["obliged"] == {"score_digits": 2}
    result = dataauth("models", "approve", model_id, "--expires", EXPIRES, "--max-runs", "10",
                      "--form", "score", "--form", "cohort", *url, *data)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "approved" in result.stdout
    assert ", scores to 2 digits; audit entry" in result.stdout

    # scores for consented subjects: the model's own answer, rounded as obliged
    rows = residents(gateway, 3)
    subjects = [{"key": r[0], "consent": consent(gateway, r[0])} for r in rows]
    response = run(client, auth, model_id, subjects=subjects)
    assert response.status_code == 200, response.text
    body = response.json()
    want = [round(float(s), 2) for s in expected_scores(rows)]
    assert [r["score"] for r in body["results"]] == pytest.approx(want, abs=0.0051)
    assert body["digest"] == shown["digest"]

    # a cohort question: statistics of the scores over a district
    district = rows[0][1]
    cohort = {"where": [{"column": "district", "op": "eq", "value": district}],
              "statistics": ["count", "mean", "histogram"]}  # fmt: skip
    response = run(client, auth, model_id, cohort=cohort)
    assert response.status_code == 200, response.text
    stats = response.json()["cohort"]
    assert stats["count"] % 5 == 0 and stats["count"] > 1000
    assert 0 < stats["mean"] < 1
    assert len(stats["histogram"]["counts"]) == 5
    # the model reads L3 features: the statistics are noised, and ε is charged
    noise = stats["protections"]["differential_privacy"]
    assert noise["mechanism"] == "laplace" and noise["epsilon"] == 0.5
    assert set(noise["noise_scale"]) == {"count", "sum(score)", "histogram"}
    assert noise["clamped_to"] == [0.0, 1.0]
    assert noise["budget"]["epsilon_spent"] >= 0.5

    # quantiles have no bounded-sensitivity answer: denied under noise
    response = run(client, auth, model_id, cohort=cohort | {"statistics": ["quantiles"]})
    assert response.status_code == 403
    assert [r["code"] for r in response.json()["reasons"]] == ["noise_unavailable"]

    # a too-small cohort is refused, and says nothing of its size
    small = {
        "where": [
            {"column": "district", "op": "eq", "value": district},
            {"column": "monthly_income", "op": "eq", "value": rows[0][2]},
            {"column": "social_insurance_months", "op": "eq", "value": rows[0][3]},
        ]
    }
    response = run(client, auth, model_id, cohort=small)
    assert response.status_code == 403
    assert response.json()["code"] == "cohort_too_small"
    assert set(response.json()) == {"type", "title", "status", "code", "detail", "min_group_size",
                                    "audit"}  # fmt: skip

    # every step is in the audit log, and no raw key or value
    log = entries(gateway, start)
    steps = [(e["operation"]["kind"], e["outcome"]) for e in log]
    assert steps == [
        ("model-submit", "submitted"),
        ("model", "denied"),
        ("model-inspect", "shown"),
        ("model-review", "approved"),
        ("model", "released"),
        ("model", "released"),
        ("model", "denied"),
        ("model", "refused"),
    ]
    # the leakage check found the policy's two digits safe: the approval records them
    assert log[3]["operation"]["conditions"] == {
        "expires": EXPIRES, "max_runs": 10, "forms": ["score", "cohort"],
        "release": {"score_digits": 2},
    }  # fmt: skip
    assert log[4]["policy_input"]["model"]["id"] == model_id
    assert log[4]["subjects"] == [gateway.keyring.subject_hasher()("residents", r[0]) for r in rows]
    assert log[5]["policy_input"]["cohort"] == {
        "conditions": [{"column": "district", "op": "eq"}],
        "statistics": ["count", "histogram", "mean"],
    }
    text = json.dumps(log, ensure_ascii=False)
    for rid, district_name, income, *_ in rows:
        assert rid not in text and district_name not in text
        assert f": {income}," not in text and f'"{income}"' not in text


# -- the pass-through check ----------------------------------------------------------


def graph(nodes, inits=(), width=3, opset=17, domains=()):
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, width])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])
    g = helper.make_graph(nodes, "g", [x], [y], initializer=list(inits))
    opsets = [helper.make_opsetid("", opset), *domains]
    model = helper.make_model(g, opset_imports=opsets, producer_name="test")
    model.ir_version = 8
    return model.SerializeToString()


def weights(name, values, shape):
    return helper.make_tensor(name, TensorProto.FLOAT, shape, values)


COPY_MANIFEST = variant(
    name="pass-through",
    inputs=[{"name": "X", "columns": FEATURES}],
    output={"name": "Y", "column": 0, "kind": "score", "meaning": "a score, it says"},
)


def one_hot_gemm(scale=1.0, bias=0.0):
    """Y = X · [scale, 0, 0]ᵀ + bias: an affine copy of monthly income."""
    return graph(
        [helper.make_node("Gemm", ["X", "W", "B"], ["Y"])],
        [weights("W", [scale, 0.0, 0.0], [3, 1]), weights("B", [bias], [1])],
    )


COPIES = {
    "affine": one_hot_gemm(0.001, 7.0),
    "sigmoid of one feature": graph(
        [
            helper.make_node("Gemm", ["X", "W"], ["Z"]),
            helper.make_node("Sigmoid", ["Z"], ["Y"]),
        ],
        [weights("W", [0.0, 0.02, 0.0], [3, 1])],
    ),
    "a feature with a whisper of another": graph(
        [helper.make_node("Gemm", ["X", "W"], ["Y"])],
        [weights("W", [1.0, 1e-7, 0.0], [3, 1])],
    ),
}


@pytest.mark.parametrize("name", sorted(COPIES))
def test_a_model_that_copies_a_feature_is_refused_at_submission(client, auth, gateway, name):
    """The check, not the policy, refuses these: a probe at submission, before review."""
    start = next_entry(gateway)
    response = submit(client, auth, COPIES[name], variant(**{**COPY_MANIFEST, "title": name}))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "output_copies_feature"
    assert problem["feature"] in FEATURES
    (logged,) = entries(gateway, start)
    assert logged["outcome"] == "refused"
    assert logged["operation"]["code"] == "output_copies_feature"
    listed = client.get("/v1/models", headers=department(auth)).json()["models"]
    assert name not in [m["manifest"]["title"] for m in listed]  # never pending


def test_an_identity_op_graph_is_refused_by_the_probe_not_the_op_list(client, auth):
    """Identity is on the operator list (exporters emit it); the probe catches the copy."""
    identity = graph([helper.make_node("Identity", ["X"], ["Y"])], width=1)
    manifest = variant(**{**COPY_MANIFEST, "title": "identity op",
                          "inputs": [{"name": "X", "columns": ["monthly_income"]}]})  # fmt: skip
    response = submit(client, auth, identity, manifest)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "output_copies_feature"
    assert response.json()["feature"] == "monthly_income"


def test_a_model_using_every_feature_passes_the_probe(client, auth):
    honest = graph(
        [helper.make_node("Gemm", ["X", "W"], ["Z"]), helper.make_node("Sigmoid", ["Z"], ["Y"])],
        [weights("W", [0.0001, 0.01, 0.3], [3, 1])],
    )
    response = submit(client, auth, honest, variant(**{**COPY_MANIFEST, "title": "honest"}))
    assert response.status_code == 201, response.text
    assert response.json()["summary"]["operators"] == {"ai.onnx.Gemm": 1, "ai.onnx.Sigmoid": 1}


# -- the other submission checks -----------------------------------------------------


def external():
    model = onnx.load_from_string(one_hot_gemm())
    tensor = model.graph.initializer[0]
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("float_data")
    tensor.external_data.add(key="location", value="/etc/passwd")
    return model.SerializeToString()


REFUSALS = {
    "model_not_onnx": (b"this is no model", None),
    "opset_not_allowed": (graph([helper.make_node("Gemm", ["X", "W"], ["Y"])],
                                [weights("W", [1.0, 1.0, 1.0], [3, 1])], opset=8), None),
    "operator_not_allowed": (graph([helper.make_node("RandomNormalLike", ["X"], ["Y"])]), None),
    "domain_not_allowed": (graph([helper.make_node("Steal", ["X"], ["Y"], domain="evil.corp")],
                                 domains=[helper.make_opsetid("evil.corp", 1)]), None),
    "external_data_not_allowed": (external(), None),
    "input_shape_mismatch": (one_hot_gemm(), {"inputs": [{"name": "X", "columns": FEATURES[:2]}]}),
    "inputs_mismatch": (one_hot_gemm(), {"inputs": [{"name": "features", "columns": FEATURES}]}),
    "output_mismatch": (one_hot_gemm(), {"output": {**COPY_MANIFEST["output"], "name": "Z"}}),
    "column_use_not_allowed": (one_hot_gemm(), {"inputs": [{"name": "X", "columns": [
        "monthly_income", "district", "properties_owned"]}]}),
    "unknown_column": (one_hot_gemm(), {"inputs": [{"name": "X", "columns": [
        "monthly_income", "shoe_size", "properties_owned"]}]}),
}  # fmt: skip


@pytest.mark.parametrize("code", sorted(REFUSALS))
def test_submission_checks_refuse_with_a_reason(client, auth, gateway, code):
    content, changes = REFUSALS[code]
    start = next_entry(gateway)
    response = submit(client, auth, content, variant(**{**COPY_MANIFEST, **(changes or {})}))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert response.json()["detail"]
    assert [e["outcome"] for e in entries(gateway, start)] == ["refused"]


def test_an_oversized_model_is_refused_before_parsing(client, auth):
    response = submit(client, auth, b"\0" * (1024 * 1024 + 1))
    assert response.status_code == 413
    assert response.json()["code"] == "model_too_large"


# -- review and execution rules ------------------------------------------------------


def test_only_departments_review_and_reviews_are_final(client, auth, approved):
    response = client.post(f"/v1/models/{approved}/approve", json={"expires": EXPIRES},
                           headers=auth())  # fmt: skip
    assert response.status_code == 403 and response.json()["code"] == "not_allowed"
    response = approve(client, auth, approved)
    assert response.status_code == 409 and response.json()["code"] == "already_reviewed"
    response = client.post(f"/v1/models/{approved}/reject", json={"reason": "late"},
                           headers=department(auth))  # fmt: skip
    assert response.status_code == 409


def test_a_rejected_model_never_runs(client, auth):
    model_id = submit(client, auth, manifest=variant(title="to be rejected")).json()["id"]
    response = client.post(f"/v1/models/{model_id}/reject",
                           json={"reason": "features do not justify the purpose"},
                           headers=department(auth))  # fmt: skip
    assert response.status_code == 200
    assert response.json()["review"]["reason"] == "features do not justify the purpose"
    response = run(client, auth, model_id, cohort={})
    assert response.status_code == 403
    assert [r["code"] for r in response.json()["reasons"]] == ["model_not_approved"]


def test_a_revoked_approval_stops_the_model(client, auth, gateway):
    model_id = submit(client, auth, manifest=variant(title="to be revoked")).json()["id"]
    assert approve(client, auth, model_id).status_code == 200
    assert run(client, auth, model_id, cohort={}).status_code == 200
    revoke = f"/v1/models/{model_id}/revoke"
    reason = {"reason": "the purpose was withdrawn"}
    assert client.post(revoke, json=reason, headers=auth()).status_code == 403  # operators can't
    response = client.post(revoke, json=reason, headers=department(auth))
    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown["status"] == "revoked" and shown["review"]["reason"] == reason["reason"]
    logged = entries(gateway, shown["audit"]["entry"])[0]
    assert logged["operation"]["kind"] == "model-review" and logged["outcome"] == "revoked"
    response = run(client, auth, model_id, cohort={})
    assert response.status_code == 403
    assert [r["code"] for r in response.json()["reasons"]] == ["model_not_approved"]
    again = client.post(revoke, json=reason, headers=department(auth))
    assert again.status_code == 409 and again.json()["code"] == "not_approved"


def test_the_cli_rejects_and_revokes(client, auth, gateway):
    def cli(action, model_id):
        return dataauth("models", action, model_id, "--reason", "withdrawn", "--url",
                        gateway.url, "--data-dir", str(gateway.data_dir))  # fmt: skip

    pending = submit(client, auth, manifest=variant(title="rejected by cli")).json()["id"]
    rejected = cli("reject", pending)
    assert rejected.returncode == 0, rejected.stderr
    assert rejected.stdout.startswith(f"rejected {pending}: withdrawn; audit entry ")
    approved_id = submit(client, auth, manifest=variant(title="revoked by cli")).json()["id"]
    assert approve(client, auth, approved_id).status_code == 200
    revoked = cli("revoke", approved_id)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.startswith(f"revoked {approved_id}: withdrawn; audit entry ")
    for status, model_id in (("rejected", pending), ("revoked", approved_id)):
        listed = dataauth("models", "list", "--status", status, "--url", gateway.url,
                          "--data-dir", str(gateway.data_dir))  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert f"{model_id}  {status}" in listed.stdout
    unknown = dataauth("models", "list", "--status", "withdrawn", "--url", gateway.url,
                       "--data-dir", str(gateway.data_dir))  # fmt: skip
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr
    assert "FAILED (invalid_request): query.status:" in unknown.stderr
    assert unknown.stderr.count("query.status: ") == 1  # where and what, said once


def test_every_status_a_model_can_have_can_be_listed(client, auth):
    """The filter takes each status a review can leave a model in, for the department and
    for the operator alike; a status no model can have is a 422 naming those it takes."""
    model_id = submit(client, auth, manifest=variant(title="listed when revoked")).json()["id"]
    assert approve(client, auth, model_id).status_code == 200
    revoke = client.post(f"/v1/models/{model_id}/revoke", json={"reason": "listing"},
                         headers=department(auth))  # fmt: skip
    assert revoke.status_code == 200, revoke.text
    for status in ("pending", "approved", "rejected", "revoked"):
        for headers in (department(auth), auth()):
            response = client.get("/v1/models", params={"status": status}, headers=headers)
            assert response.status_code == 200, response.text
            assert {m["status"] for m in response.json()["models"]} <= {status}
    for headers in (department(auth), auth()):
        listed = client.get("/v1/models", params={"status": "revoked"}, headers=headers).json()
        assert model_id in [m["id"] for m in listed["models"]]
    response = client.get("/v1/models", params={"status": "withdrawn"}, headers=department(auth))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "'revoked'" in response.json()["detail"]


def test_operators_see_and_run_only_their_own_models(client, auth, approved):
    assert client.get(f"/v1/models/{approved}", headers=auth("demo-insurer")).status_code == 404
    mine = client.get("/v1/models", headers=auth("demo-insurer")).json()["models"]
    assert approved not in [m["id"] for m in mine]
    response = run(client, auth, approved, operator="demo-insurer", purpose="underwriting",
                   cohort={})  # fmt: skip
    assert response.status_code == 403
    codes = {r["code"] for r in response.json()["reasons"]}
    assert {"model_not_owned", "purpose_not_approved"} <= codes


def test_scores_need_each_subjects_consent(client, auth, gateway, approved):
    rows = residents(gateway, 2, offset=10)
    wrong = consent(gateway, rows[1][0], "income-band")  # another product's consent
    subjects = [{"key": rows[0][0], "consent": consent(gateway, rows[0][0])},
                {"key": rows[1][0], "consent": wrong}]  # fmt: skip
    response = run(client, auth, approved, subjects=subjects)
    assert response.status_code == 403
    assert [r["code"] for r in response.json()["reasons"]] == ["consent_missing"]
    assert rows[0][0] not in response.text


def test_a_form_not_approved_and_the_run_limit(client, auth, gateway):
    model_id = submit(client, auth, manifest=variant(title="two runs")).json()["id"]
    assert approve(client, auth, model_id, max_runs=2, forms=["cohort"]).status_code == 200
    key = residents(gateway, 1)[0][0]
    response = run(
        client, auth, model_id, subjects=[{"key": key, "consent": consent(gateway, key)}]
    )
    assert response.status_code == 403
    assert [r["code"] for r in response.json()["reasons"]] == ["form_not_approved"]
    assert run(client, auth, model_id, cohort={}).status_code == 200
    assert run(client, auth, model_id, cohort={}).status_code == 200
    response = run(client, auth, model_id, cohort={})
    assert response.status_code == 429
    assert response.json()["code"] == "model_runs_exhausted"


def test_approval_conditions_are_checked(client, auth):
    model_id = submit(client, auth, manifest=variant(title="conditions", forms=["cohort"])).json()
    response = approve(client, auth, model_id["id"], expires="2020-01-01T00:00:00Z")
    assert response.status_code == 422 and response.json()["code"] == "expiry_in_past"
    response = approve(client, auth, model_id["id"], forms=["score"])
    assert response.status_code == 422 and response.json()["code"] == "form_not_requested"


def test_an_unknown_subject_scores_null(client, auth, gateway, approved):
    key = "440106190001010000"
    response = run(
        client, auth, approved, subjects=[{"key": key, "consent": consent(gateway, key)}]
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [{"index": 0, "score": None}]


def test_cohort_filters_need_the_compare_use(client, auth, approved):
    cohort = {"where": [{"column": "resident_id", "op": "eq", "value": "440106190001010000"}]}
    response = run(client, auth, approved, cohort=cohort)
    assert response.status_code == 403
    assert "column_use_not_allowed" in {r["code"] for r in response.json()["reasons"]}
    assert "440106190001010000" not in response.text


def test_only_the_approved_bytes_run(client, auth, gateway):
    """Bytes changed under the approved digest do not run (nor do they hash to it)."""
    other = graph(
        [helper.make_node("Gemm", ["X", "W"], ["Z"]), helper.make_node("Sigmoid", ["Z"], ["Y"])],
        [weights("W", [0.0002, 0.02, 0.5], [3, 1])],
    )
    manifest = variant(**{**COPY_MANIFEST, "title": "tampered after approval"})
    model_id = submit(client, auth, other, manifest).json()["id"]
    digest = approve(client, auth, model_id).json()["digest"]

    with gateway.gateway_db() as db:
        db.execute(text("UPDATE model_blob SET content = :c WHERE digest = :d"),
                   {"c": one_hot_gemm(), "d": digest})  # fmt: skip
        db.commit()
    response = run(client, auth, model_id, cohort={})
    assert response.status_code == 403
    assert response.json()["code"] == "model_bytes_missing"


# -- disclosure under the obligations ------------------------------------------------


def test_statistics_suppress_round_and_band():
    from dataauth.operations.model import Cohort, band, statistics

    scores = np.array([0.05] * 30 + [0.55] * 3 + [0.95] * 27)
    cohort = Cohort(statistics=["count", "mean", "histogram"], bins=[0, 0.5, 1])
    out = statistics(
        scores, cohort, {"min_group_size": 20, "count_multiple": 5, "statistic_digits": 2}
    )
    assert out["count"] == 60 and out["mean"] == 0.48
    assert out["histogram"]["counts"] == [30, 30]
    out = statistics(scores, Cohort(statistics=["histogram"], bins=[0, 0.5, 0.9, 1]),
                     {"min_group_size": 20})  # fmt: skip
    assert out["histogram"]["counts"] == [30, None, 27]  # 3 in the middle bin: suppressed
    with pytest.raises(Exception, match="fewer than 100"):
        statistics(scores, cohort, {"min_group_size": 100})
    bands = {"cuts": [0.2, 0.5, 0.8], "labels": ["low", "medium", "high", "very high"]}
    assert [band(s, bands) for s in (0.1, 0.2, 0.79, 0.99)] == ["low", "medium", "high",
                                                               "very high"]  # fmt: skip


def test_noise_hides_one_subject_from_a_differencing_pair():
    """Two cohorts that differ by one subject: without noise their means and counts give
    away that subject's score; with the dp obligation's noise they do not."""
    from dataauth.accounts.privacy import Noise, NoiseTerms, Spend
    from dataauth.operations.model import Cohort, statistics

    # large enough that its noisy count clears the selection's threshold (72 here)
    others = np.random.default_rng(1).uniform(0, 1, 400)
    target = 0.9137
    cohort = Cohort(statistics=["count", "mean"])
    plain = {"min_group_size": 20, "statistic_digits": 6}

    def revealed(noise):
        without = statistics(others, cohort, plain, noise)
        with_one = statistics(np.append(others, target), cohort, plain, noise)
        return with_one["mean"] * with_one["count"] - without["mean"] * without["count"]

    assert revealed(None) == pytest.approx(target, abs=1e-4)
    terms = NoiseTerms("laplace", 0.5, 0.0, (("t|residents", 1000.0),), 1e-8)
    noise = Noise(terms, (Spend(True, 0.5, 1000),))
    guesses = np.array([revealed(noise) for _ in range(200)])
    # each guess is off by noise of scale ~ 4 subjects' worth: the score is not there
    assert guesses.std() > 2
    assert np.mean(np.abs(guesses - target) < 0.05) < 0.1
    out = statistics(others, Cohort(statistics=["count", "histogram"]), plain, noise)
    assert out["protections"]["differential_privacy"]["epsilon_per_measurement"] == 0.25


@pytest.fixture(scope="module")
def small_budget(gateway, tmp_path_factory):
    """A gateway of its own whose policy gives demo-bank ε 1 on each dataset."""
    running = start_with_budget(gateway, tmp_path_factory.mktemp("budget"), 1)
    yield running
    stop_gateway(running)


def test_cohorts_and_queries_spend_one_privacy_budget(small_budget):
    """A model's noised cohort and an aggregate query over the same dataset draw on one
    ε account: otherwise an operator could average away the noise of one through the
    other."""
    with httpx.Client(base_url=small_budget.url, timeout=60) as client:

        def auth(operator="demo-bank", **kwargs):
            return {"Authorization": f"Bearer {small_budget.token(operator, **kwargs)}"}

        model_id = submit(client, auth).json()["id"]
        assert approve(client, auth, model_id).status_code == 200

        def query():
            sql = "SELECT AVG(monthly_income) FROM residents"
            return client.post("/v1/query", headers=auth(), json={"purpose": "credit", "sql": sql})

        first = run(client, auth, model_id, cohort={"statistics": ["count", "mean"]})
        assert first.status_code == 200, first.text
        budget = first.json()["cohort"]["protections"]["differential_privacy"]["budget"]
        assert budget == {"epsilon_spent": 0.5, "epsilon_remaining": 0.5, "epsilon_total": 1}
        second = query()
        assert second.status_code == 200, second.text
        assert second.json()["protections"]["differential_privacy"]["budget"][
            "epsilon_remaining"] == 0  # fmt: skip
        for refused in (run(client, auth, model_id, cohort={}), query()):
            assert refused.status_code == 403
            problem = refused.json()
            assert problem["code"] == "privacy_budget_exhausted"
            assert problem["remaining"] == 0 and problem["budget"] == 1
            assert "audit" in problem
