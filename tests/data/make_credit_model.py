"""Make the demo credit model (tests/data/credit_model.onnx): a logistic regression over
the residents' monthly income, months of social insurance and properties owned.

Trained on synthetic applicants (fixed seed; no register data), exported with skl2onnx
without ZipMap so its probabilities are a plain [batch, 2] tensor. Run it with the
``demo-model`` extra installed: ``pip install -e '.[demo-model]'``, then
``python tests/data/make_credit_model.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = ["monthly_income", "social_insurance_months", "properties_owned"]
HERE = Path(__file__).resolve().parent


def applicants(n: int, seed: int = 20261126) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic applicants and whether each repaid: more income, longer insurance and a
    property make repaying likelier."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(8.85, 0.6, n)
    months = rng.integers(0, 360, n).astype(float)
    properties = rng.choice(6, n, p=[0.45, 0.35, 0.12, 0.05, 0.02, 0.01]).astype(float)
    logit = -3.0 + 0.00035 * income + 0.006 * months + 0.5 * properties
    repaid = rng.random(n) < 1 / (1 + np.exp(-logit))
    return np.column_stack([income, months, properties]).astype(np.float32), repaid.astype(int)


def main() -> None:
    x, y = applicants(20_000)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    onnx = to_onnx(
        model,
        x[:1],
        options={"zipmap": False},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    onnx.producer_name = "skl2onnx (dataauth demo credit model)"
    (HERE / "credit_model.onnx").write_bytes(onnx.SerializeToString())
    print(f"accuracy on the training applicants: {model.score(x, y):.3f}")


if __name__ == "__main__":
    main()
