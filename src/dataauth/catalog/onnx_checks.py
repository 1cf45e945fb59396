"""Checks on a submitted ONNX model (模型审查), before any department sees it.

A model is data, not code: a graph of operators from a short list. These checks
refuse what a linear or tree model does not need (control flow, custom domains,
external files, string or random operators), check the graph's inputs against the
manifest, summarise the graph for the reviewer, and probe it for an output that
copies a feature straight through. Each refusal is a Problem with a stable code.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, numpy_helper

from dataauth.errors import Problem, unprocessable

DEFAULT_DOMAIN = "ai.onnx"
ML_DOMAIN = "ai.onnx.ml"
OPSETS = {DEFAULT_DOMAIN: (9, 23), ML_DOMAIN: (1, 5)}
"""The opset versions accepted per domain (inclusive); no other domain is."""

ARITHMETIC = frozenset(
    {
        "Add",
        "Sub",
        "Mul",
        "Div",
        "MatMul",
        "Gemm",
        "Neg",
        "Abs",
        "Sqrt",
        "Exp",
        "Log",
        "Reciprocal",
        "Sigmoid",
        "Softmax",
        "Tanh",
        "Relu",
        "Clip",
        "Max",
        "Min",
        "Sum",
    }
)
"""Arithmetic and the activations of linear and logistic models."""
SHAPING = frozenset(
    {
        "Cast",
        "Identity",
        "Reshape",
        "Flatten",
        "Concat",
        "Squeeze",
        "Unsqueeze",
        "Transpose",
        "Constant",
        "ReduceSum",
        "ReduceMean",
        "ReduceMax",
        "ArgMax",
    }
)
OPERATORS = {
    DEFAULT_DOMAIN: ARITHMETIC | SHAPING,
    ML_DOMAIN: frozenset(
        {
            "LinearClassifier",
            "LinearRegressor",
            "Normalizer",
            "Scaler",
            "Binarizer",
            "TreeEnsembleClassifier",
            "TreeEnsembleRegressor",
            "TreeEnsemble",
        }
    ),
}
"""What linear, logistic and tree-ensemble models export to (skl2onnx with
``zipmap=False``). Not on it: control flow (If, Loop, Scan), random generators, string
operators, ZipMap (its output is a sequence of maps, not a tensor) and anything else."""

FLOAT_TYPES = {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64}
"""Inputs are numeric feature matrices: float32 or float64."""


def refused(code: str, detail: str, **extensions: Any) -> Problem:
    return unprocessable(code, detail, **extensions)


@dataclass(frozen=True)
class Graph:
    """A parsed, checked model and what a reviewer sees of it."""

    model: onnx.ModelProto
    summary: dict[str, Any]


def _domain(name: str) -> str:
    return name or DEFAULT_DOMAIN


def _dims(value: onnx.ValueInfoProto) -> list[int | str | None]:
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim]


def parse(content: bytes, max_bytes: int) -> Graph:
    """Parse and check ``content`` (at most ``max_bytes``): the graph and its summary."""
    if len(content) > max_bytes:  # before parsing: a parser is no place for a huge input
        raise Problem(413, "model_too_large", f"a model is at most {max_bytes} bytes")
    try:
        model = onnx.load_from_string(content)  # parses only: external data is not read
    except Exception as exc:  # the parser raises several kinds
        raise refused("model_not_onnx", f"not a valid ONNX model: {type(exc).__name__}") from None
    opsets: dict[str, int] = {}
    for opset in model.opset_import:
        domain = _domain(opset.domain)
        if domain not in OPSETS:
            raise refused("domain_not_allowed", f"operator domain {domain!r} is not allowed")
        low, high = OPSETS[domain]
        if not low <= opset.version <= high:
            raise refused(
                "opset_not_allowed",
                f"{domain} opset {opset.version} is outside the allowed {low} to {high}",
            )
        opsets[domain] = opset.version
    if model.functions:
        raise refused("functions_not_allowed", "a model may not define local functions")
    operators: Counter[str] = Counter()
    for node in model.graph.node:
        domain = _domain(node.domain)
        if domain not in OPERATORS:
            raise refused("domain_not_allowed", f"operator domain {domain!r} is not allowed")
        if node.op_type not in OPERATORS[domain]:
            raise refused(
                "operator_not_allowed", f"operator {domain}.{node.op_type} is not on the list"
            )
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
               for a in node.attribute):  # fmt: skip
            raise refused("subgraph_not_allowed", f"operator {node.op_type} holds a subgraph")
        operators[f"{domain}.{node.op_type}"] += 1
    initializers = list(model.graph.initializer) + [
        s.values for s in model.graph.sparse_initializer
    ]
    initializers += [a.t for n in model.graph.node for a in n.attribute if a.HasField("t")]
    if any(t.data_location == TensorProto.EXTERNAL for t in initializers):
        raise refused("external_data_not_allowed", "a model may not reference external data")
    try:  # after the list checks, so that a refusal names what is not allowed
        onnx.checker.check_model(model)
    except Exception as exc:  # the checker raises several kinds
        raise refused("model_not_onnx", f"not a valid ONNX model: {type(exc).__name__}") from None
    names = {t.name for t in model.graph.initializer}
    summary = {
        "bytes": len(content),
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "opsets": opsets,
        "operators": dict(sorted(operators.items())),
        "inputs": [
            {
                "name": i.name,
                "type": TensorProto.DataType.Name(i.type.tensor_type.elem_type),
                "shape": _dims(i),
            }
            for i in model.graph.input
            if i.name not in names
        ],
        "outputs": [
            {
                "name": o.name,
                "type": TensorProto.DataType.Name(o.type.tensor_type.elem_type)
                if o.type.HasField("tensor_type")
                else "non-tensor",
                "shape": _dims(o) if o.type.HasField("tensor_type") else None,
            }
            for o in model.graph.output
        ],
        "initializers": [
            {"type": TensorProto.DataType.Name(t.data_type), **weights(t.name, _array(t))}
            for t in model.graph.initializer
        ],
        "attributes": node_weights(model),
    }
    return Graph(model, summary)


FULL = 16
"""An initializer of at most this many values is shown in full."""
LARGEST = 5
NEAR_ZERO = 1e-3
"""A value under this share of its tensor's largest magnitude does next to nothing,
unless it is there to nudge a copy past a check: a reviewer should see how many."""


def _array(tensor: onnx.TensorProto) -> np.ndarray:
    try:
        return numpy_helper.to_array(tensor)
    except Exception:  # a tensor the checker let through but numpy cannot hold
        return np.zeros(0)


def weights(name: str, array: np.ndarray) -> dict[str, Any]:
    """What a reviewer sees of one tensor of weights: its shape and size, the spread of
    its values, how many are near zero, its largest magnitudes and where they are, and
    a small one in full."""
    shown: dict[str, Any] = {"name": name, "shape": list(array.shape), "count": int(array.size)}
    if array.size == 0 or not np.issubdtype(array.dtype, np.number):
        return shown
    values = array.astype(np.float64).ravel()
    finite = np.isfinite(values)
    if not finite.all():
        shown["non_finite"] = int((~finite).sum())
    if finite.any():
        kept = values[finite]
        largest = float(np.abs(kept).max())
        shown |= {
            "min": _shown(kept.min()),
            "max": _shown(kept.max()),
            "mean": _shown(kept.mean()),
            "std": _shown(kept.std()),
            "near_zero": int((np.abs(kept) <= NEAR_ZERO * largest).sum()),
        }
        order = np.argsort(-np.where(finite, np.abs(values), -1.0), kind="stable")[:LARGEST]
        shown["largest"] = [
            {"at": [int(i) for i in np.unravel_index(int(k), array.shape)],
             "value": _shown(values[k])}
            for k in order if finite[k]
        ]  # fmt: skip
    if array.size <= FULL:
        shown["values"] = [_shown(v) if np.isfinite(v) else str(v) for v in values]
    return shown


def _shown(value: float) -> float:
    """Seven significant digits: what a float32 weight holds."""
    return float(f"{float(value):.7g}")


def node_weights(model: onnx.ModelProto) -> list[dict[str, Any]]:
    """Weights held in operators' attributes (a Constant's tensor, a LinearClassifier's
    coefficients, a Scaler's offsets, a tree's thresholds), summarised as initializers."""
    shown = []
    for n, node in enumerate(model.graph.node):
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                array = _array(attribute.t)
            elif attribute.type == onnx.AttributeProto.FLOATS:
                array = np.array(attribute.floats, dtype=np.float64)
            else:
                continue
            name = f"{node.name or node.op_type + '#' + str(n)}.{attribute.name}"
            shown.append({"operator": f"{_domain(node.domain)}.{node.op_type}",
                          **weights(name, array)})  # fmt: skip
    return shown


def check_inputs(graph: Graph, inputs: list[tuple[str, int]], output: tuple[str, int]) -> None:
    """The graph's inputs are the manifest's, in count, name, type and width (features);
    the manifest's output is one of the graph's float tensors, with that column."""
    declared = graph.summary["inputs"]
    if [i["name"] for i in declared] != [name for name, _ in inputs]:
        raise refused(
            "inputs_mismatch",
            f"the graph's inputs are {[i['name'] for i in declared]}; "
            f"the manifest binds {[name for name, _ in inputs]}",
        )
    for value, (name, width) in zip(declared, inputs, strict=True):
        if TensorProto.DataType.Value(value["type"]) not in FLOAT_TYPES:
            raise refused("input_type_not_allowed", f"input {name} must be float or double")
        shape = value["shape"]
        if len(shape) != 2 or isinstance(shape[0], int):
            raise refused(
                "input_shape_mismatch", f"input {name} must be [batch, {width}], batch dynamic"
            )
        if shape[1] != width:
            raise refused(
                "input_shape_mismatch",
                f"input {name} has {shape[1]} features; the manifest binds {width} columns",
            )
    out_name, column = output
    outputs = {o["name"]: o for o in graph.summary["outputs"]}
    found = outputs.get(out_name)
    if found is None:
        raise refused("output_mismatch", f"the graph has no output {out_name!r}")
    if found["type"] not in ("FLOAT", "DOUBLE"):
        raise refused("output_type_not_allowed", f"output {out_name} must be a float tensor")
    shape = found["shape"] or []
    width = shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
    if len(shape) not in (1, 2) or (len(shape) == 1 and column != 0):
        raise refused("output_mismatch", f"output {out_name} must be [batch] or [batch, n]")
    if width is not None and column >= width:
        raise refused("output_mismatch", f"output {out_name} has no column {column}")


def session(content: bytes) -> ort.InferenceSession:
    """An onnxruntime session on one thread (several run side by side in the threadpool)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])


def run(
    sess: ort.InferenceSession, features: list[np.ndarray], output: tuple[str, int]
) -> np.ndarray:
    """The declared output column for a batch: one float64 per row."""
    feeds = {}
    for value, matrix in zip(sess.get_inputs(), features, strict=True):
        dtype = np.float64 if value.type == "tensor(double)" else np.float32
        feeds[value.name] = np.ascontiguousarray(matrix, dtype=dtype)
    name, column = output
    (result,) = sess.run([name], feeds)
    result = np.asarray(result, dtype=np.float64)
    return result[:, column] if result.ndim == 2 else result


PROBE_ROWS = 256
PROBE_SCALES = (1.0, 100.0, 10_000.0, 1_000_000.0)
"""Features are probed around zero at several scales: a sigmoid saturates at one scale
and not at another, and real features range from fractions to tens of thousands."""


def copies_feature(
    sess: ort.InferenceSession, widths: list[int], output: tuple[str, int]
) -> dict[str, Any] | None:
    """Whether the declared output copies one feature through; what was found, or None.

    Two tests on random probe inputs, at several scales:
    - the output depends on exactly one feature (moving any other changes nothing):
      then it is a function of that feature alone (identity, affine map, sigmoid of
      it...), and an invertible one gives the feature back;
    - the output is an affine function of one feature (R² within 1e-9 of 1), even
      where other features nudge it by rounding noise.
    It does not catch encodings of several features into one number (x1*1e6 + x2),
    copies of a feature that is also the only one a model really uses, or a copy
    through a non-monotone function that happens to vary with other features.
    """
    total = sum(widths)
    rng = np.random.default_rng(20261126)
    moved: set[int] = set()
    for scale in PROBE_SCALES:
        probe = rng.normal(0.0, scale, size=(PROBE_ROWS, total))
        base = run(sess, split(probe, widths), output)
        for feature in range(total):
            column = probe[:, feature]
            spread = np.ptp(base)
            if spread > 0 and np.ptp(column) > 0:
                r = np.corrcoef(column, base)[0, 1]
                if np.isfinite(r) and 1 - r * r < 1e-9:
                    return {"feature": feature, "test": "affine", "scale": scale}
            shifted = probe.copy()
            shifted[:, feature] += scale * 0.5 + 1.0
            after = run(sess, split(shifted, widths), output)
            if np.any(np.abs(after - base) > 1e-12 * (1 + np.abs(base))):
                moved.add(feature)
    if len(moved) == 1 and total > 0:
        return {"feature": next(iter(moved)), "test": "single-feature"}
    return None


def split(matrix: np.ndarray, widths: list[int]) -> list[np.ndarray]:
    parts, start = [], 0
    for width in widths:
        parts.append(matrix[:, start : start + width])
        start += width
    return parts
