"""The regulator's check of an HE model filing (算法备案), end to end: the filing taken
from the gateway with a regulator's token, the operator's reveal bundle, and
``dataauth he check-filing`` offline, on honest filings and on filings that lie."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tenseal as ts

from dataauth.sdk.he import (
    GatewayError,
    HEClient,
    LinearModel,
    check_filing,
    make_context,
    reveal_bundle,
)
from test_he import DOCS, FEATURES, PRODUCT, consented, rows

pytestmark = pytest.mark.slow

HONEST = LinearModel(FEATURES, [0.0004, 0.02, 0.5], -3.0)


@pytest.fixture(scope="module")
def secret() -> ts.Context:
    return make_context()


@pytest.fixture(scope="module")
def bank(gateway, secret):
    with HEClient(gateway.url, gateway.token("demo-bank")) as client:
        yield client, client.register_context(secret)


@pytest.fixture(scope="module")
def regulator(gateway):
    with HEClient(gateway.url, gateway.token("cac-regulator", roles=("regulator",))) as client:
        yield client


def file_encrypting(client, secret, context_id, claimed: LinearModel, weights, bias) -> str:
    """File ciphertexts of ``weights`` (each a per-slot list) under ``claimed``'s
    commitment and bounds."""
    encrypt = lambda values: base64.b64encode(ts.ckks_vector(secret, values).serialize()).decode()  # noqa: E731
    body = {"product": PRODUCT, "context": context_id, "features": claimed.features,
            "commitment": claimed.commitment(), "bounds": claimed.declared(),
            "weights": [encrypt(w) for w in weights], "bias": encrypt(bias)}  # fmt: skip
    return client._post("/v1/he/models", body)["id"]


def codes(problems: list[dict[str, str]]) -> set[str]:
    return {p["code"] for p in problems}


def test_an_honest_filing_checks_out_and_only_a_regulator_reads_it(bank, regulator, secret):
    client, context_id = bank
    model_id = client.register_model(PRODUCT, context_id, HONEST, secret)
    with pytest.raises(GatewayError) as refused:
        client.filing(model_id)
    assert refused.value.status == 403 and refused.value.problem["code"] == "not_allowed"
    filing = regulator.filing(model_id)
    assert filing["id"] == model_id and filing["operator"] == "demo-bank"
    assert filing["bounds"] == HONEST.declared() and len(filing["weights"]) == 3
    assert check_filing(filing, reveal_bundle(HONEST, secret, model_id)) == []
    # a reveal that is not the filed model, whatever part of it is off
    others = (
        LinearModel(FEATURES, [0.0004, 0.02, 0.6], -3.0, HONEST.salt, HONEST.bounds),
        LinearModel(FEATURES, HONEST.weights, -3.0, os.urandom(16), HONEST.bounds),
    )
    for other in others:
        assert "commitment_mismatch" in codes(
            check_filing(filing, reveal_bundle(other, secret, model_id))
        )
    wrong_key = reveal_bundle(HONEST, make_context(), model_id)
    assert codes(check_filing(filing, wrong_key)) == {"other_context"}
    tampered = {**filing, "weights": [filing["bias"], *filing["weights"][1:]]}
    assert {"digest_mismatch", "ciphertext_mismatch"} <= codes(
        check_filing(tampered, reveal_bundle(HONEST, secret, model_id))
    )


def test_ciphertexts_that_are_not_the_revealed_weights_are_found(bank, regulator, secret):
    """An operator commits to the honest model but files a reader of income (one-hot,
    every slot), or weights that differ per slot: the revealed weights give the
    commitment, but the filed ciphertexts do not decrypt to them."""
    client, context_id = bank
    slots = 4096
    reader = [[1.0] * slots, [0.0] * slots, [0.0] * slots]
    model_id = file_encrypting(client, secret, context_id, HONEST, reader, [-3.0] * slots)
    problems = check_filing(regulator.filing(model_id), reveal_bundle(HONEST, secret, model_id))
    assert codes(problems) == {"ciphertext_mismatch"}
    assert len(problems) == 3  # the three weights; the bias is the revealed one
    per_slot = [[w] * slots for w in HONEST.weights]
    per_slot[0][1] = 1.0  # slot 1 reads income
    model_id = file_encrypting(client, secret, context_id, HONEST, per_slot, [-3.0] * slots)
    problems = check_filing(regulator.filing(model_id), reveal_bundle(HONEST, secret, model_id))
    detail = "weight 0: 1 of 4096 slots do not hold the revealed value"
    assert problems == [{"code": "ciphertext_mismatch", "detail": detail}]


def test_weights_beyond_the_declared_bounds_are_found(gateway, bank, regulator, secret):
    """The gateway sizes a score's noise from the declared bounds, so a filing that
    declares income's weight under 2^-11 and uses 1 reads income to ±0.4 yuan: the
    residual risk of secret weights. The regulator's check finds it, from the commitment
    the operator made, and every score's audit entry names the filing."""
    client, context_id = bank
    liar = LinearModel(FEATURES, [1.0, 0.0, 0.0], 0.0, bounds=HONEST.declared())
    model_id = client.register_model(PRODUCT, context_id, liar, secret)
    key, income, *_ = rows(gateway, 1, offset=500)[0]
    result = client.score(secret, context_id, model_id, liar, subjects=[consented(gateway, key)],
                          purpose="credit")  # fmt: skip
    assert result.response["noise"] < 0.4
    assert abs(result.scores[0] - income) < 0.4
    problems = check_filing(regulator.filing(model_id), reveal_bundle(liar, secret, model_id))
    assert codes(problems) == {"weight_out_of_bounds"}


def test_the_docs_check_runs_as_written(gateway, bank, secret, tmp_path):
    """The regulator's commands in the docs, with the operator's bundle (``reveal_bundle``)."""
    client, context_id = bank
    model_id = client.register_model(PRODUCT, context_id, HONEST, secret)
    section = (DOCS / "regulators.md").read_text()
    section = section[section.index("## Encrypted scoring filings") :]
    script = re.search(r"```sh\n(export REGULATOR=.*?)```", section, re.S).group(1)
    (tmp_path / "reveal.json").write_text(json.dumps(reveal_bundle(HONEST, secret, model_id)))
    env = {**os.environ, "DATAAUTH_URL": gateway.url, "DATAAUTH_DATA_DIR": str(gateway.data_dir),
           "MODEL_ID": model_id,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"OK: filing {model_id} of demo-bank" in done.stdout
    # the same check on a filing whose ciphertexts are a reader of income fails, exit 1
    slots = 4096
    reader = [[1.0] * slots, [0.0] * slots, [0.0] * slots]
    lying = file_encrypting(client, secret, context_id, HONEST, reader, [-3.0] * slots)
    (tmp_path / "reveal.json").write_text(json.dumps(reveal_bundle(HONEST, secret, lying)))
    env["MODEL_ID"] = lying
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1
    assert "ciphertext_mismatch: weight 0" in done.stdout and "FAILED" in done.stderr


def test_the_filings_are_listed_to_a_department_and_a_regulator(gateway, bank, regulator, secret):
    client, context_id = bank
    model_id = client.register_model(PRODUCT, context_id, HONEST, secret)
    department = gateway.token("demo-department", roles=("department",))
    with HEClient(gateway.url, department) as reader:
        listing = reader.request("GET", "/v1/he/filings")
    model = next(m for m in listing["models"] if m["id"] == model_id)
    assert model["operator"] == "demo-bank" and model["commitment"] == HONEST.commitment()
    assert model["context"] == context_id and model["weights_digest"].startswith("sha256:")
    assert any(c["id"] == context_id for c in listing["contexts"])
    assert "data" not in str(listing.keys()) and "weights" not in model
    assert regulator.request("GET", "/v1/he/filings") == listing
    with pytest.raises(GatewayError) as refused:
        client.request("GET", "/v1/he/filings")
    assert refused.value.status == 403
