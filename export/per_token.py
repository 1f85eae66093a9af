"""Per-token int8: int8 weights per output channel, activations quantized per token at run time.

ONNX Runtime's ``quantize_dynamic`` quantizes each activation tensor with ONE scale for the
whole batch. Transformer activations vary a lot from token to token (on the HH MiniLM reward
model the largest token's max is 7-9x the median token's), so one scale wastes most of the
8 bits on the other tokens: 5.5% of close HH pairs changed order. Here each token (row) gets
its own scale and zero point, and the matmul still runs on ONNX Runtime's u8 x s8 integer
kernel (``MatMulIntegerToFloat``); the per-row scale and the zero-point correction are applied
to the fp32 result:

    x ~ s_row * q + m_row          q = round((x - m_row) / s_row) in [0, 255]
    x @ W ~ s_row * (q @ Wq) * s_col + m_row * colsum(W~)

A side effect that matters for serving: a row's result no longer depends on the other rows
in the batch, so a text scores the same whoever it is batched with.

The matmuls whose quantization hurts most (largest relative output error on calibration
texts) can stay fp32: ``keep_fp32`` of them. A matmul is named by its output tensor, which
ONNX requires to be unique (node names are optional: exporters leave some empty).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

_MS_DOMAIN = "com.microsoft"
_EPS = np.float32(1e-8)


def quantizable_matmuls(model) -> dict:
    """Return ``{output tensor name: node}`` of the MatMuls with a 2-D fp32 constant weight (the dense layers).

    Raises ValueError when two nodes of the graph write the same tensor (invalid ONNX, and
    the key would be ambiguous).
    """
    import onnx

    inits = {i.name: i for i in model.graph.initializer}
    writers: dict[str, int] = {}
    for n in model.graph.node:
        for out in n.output:
            writers[out] = writers.get(out, 0) + 1
    duplicated = sorted(name for name, count in writers.items() if count > 1 and name)
    if duplicated:
        raise ValueError(f"per-token int8: tensors written by more than one node: {duplicated}")
    return {
        n.output[0]: n for n in model.graph.node
        if n.op_type == "MatMul" and n.input[1] in inits and len(inits[n.input[1]].dims) == 2
        and inits[n.input[1]].data_type == onnx.TensorProto.FLOAT
    }


def quantize_weight(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per output column: return (int8 weights, fp32 scale per column)."""
    scale = np.maximum(np.abs(w).max(axis=0) / 127.0, 1e-12).astype(np.float32)
    return np.clip(np.round(w / scale), -127, 127).astype(np.int8), scale


def fake_quantize_rows(x: np.ndarray) -> np.ndarray:
    """What the graph computes for activations: asymmetric uint8 per row, dequantized."""
    lo, hi = x.min(axis=-1, keepdims=True), x.max(axis=-1, keepdims=True)
    scale = np.maximum((hi - lo) / 255.0, _EPS)
    return np.round((x - lo) / scale) * scale + lo


def sensitivity(src: Path, batches: Iterable[dict[str, np.ndarray]]) -> dict[str, float]:
    """Relative output error ``|x~ @ W~ - x @ W| / |x @ W|`` of each dense matmul on ``batches``, by output tensor."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(src))
    nodes = quantizable_matmuls(model)
    inits = {i.name: i for i in model.graph.initializer}
    activations = sorted({n.input[0] for n in nodes.values()})
    for name in activations:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    seen: dict[str, list[np.ndarray]] = {a: [] for a in activations}
    for feeds in batches:
        mask = feeds.get("attention_mask")
        for name, value in zip(activations, session.run(activations, feeds), strict=True):
            rows = value.reshape(-1, value.shape[-1])
            if mask is not None and mask.size == rows.shape[0]:  # padding rows say nothing
                rows = rows[mask.reshape(-1).astype(bool)]
            seen[name].append(rows)
    errors = {}
    for out, node in nodes.items():
        x = np.concatenate(seen[node.input[0]])
        w = onnx.numpy_helper.to_array(inits[node.input[1]])
        wq, ws = quantize_weight(w)
        exact = x @ w
        approx = fake_quantize_rows(x) @ (wq.astype(np.float32) * ws)
        errors[out] = float(np.linalg.norm(approx - exact) / max(np.linalg.norm(exact), 1e-12))
    return errors


def quantize_per_token(src: Path, dst: Path, keep_fp32: Iterable[str] = ()) -> int:
    """Write ``src`` with its dense matmuls in per-token int8; return how many.

    ``keep_fp32`` names the matmuls (by output tensor, as :func:`sensitivity` keys them) that
    stay fp32; a name that is no dense matmul's output raises ValueError.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    matmuls = quantizable_matmuls(model)
    keep = set(keep_fp32)
    unknown = sorted(keep - set(matmuls))
    if unknown:
        raise ValueError(f"per-token int8: keep_fp32 names no dense MatMul output: {unknown}")
    targets = {out: n for out, n in matmuls.items() if out not in keep}
    inits = {i.name: i for i in graph.initializer}
    new_inits = [
        numpy_helper.from_array(np.float32(255), "pt_255"), numpy_helper.from_array(_EPS, "pt_eps"),
        numpy_helper.from_array(np.float32(1), "pt_one"), numpy_helper.from_array(np.uint8(0), "pt_zero_point"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "pt_last_axis"),
    ]
    nodes, quantized_inputs, quantized_weights = [], {}, set()
    for node in graph.node:
        # By output tensor, not node name: unnamed nodes all share the name "".
        if not node.output or node.output[0] not in targets:
            nodes.append(node)
            continue
        x = node.input[0]
        if x not in quantized_inputs:  # Q, K and V projections share one quantized input
            quantized_inputs[x] = _quantize_rows(x, nodes, opset)
        q, scale, low = quantized_inputs[x]
        base = node.input[1]
        if base not in quantized_weights:  # a tied weight is quantized once
            quantized_weights.add(base)
            wq, ws = quantize_weight(numpy_helper.to_array(inits[base]))
            colsum = (wq.astype(np.float32) * ws).sum(axis=0).astype(np.float32)
            new_inits += [numpy_helper.from_array(wq, f"{base}_int8"), numpy_helper.from_array(ws, f"{base}_scale"),
                          numpy_helper.from_array(colsum, f"{base}_colsum")]
        out = node.output[0]
        p = f"{out}_pt"  # unique like the tensor name; node names may be empty or repeated
        nodes += [
            helper.make_node("MatMulIntegerToFloat", [q, f"{base}_int8", "pt_one", f"{base}_scale", "pt_zero_point"],
                             [f"{p}_int"], name=f"{p}_matmul", domain=_MS_DOMAIN),
            helper.make_node("Mul", [f"{p}_int", scale], [f"{p}_scaled"], name=f"{p}_row_scale"),
            helper.make_node("Mul", [low, f"{base}_colsum"], [f"{p}_offset"], name=f"{p}_offset"),
            helper.make_node("Add", [f"{p}_scaled", f"{p}_offset"], [out], name=f"{p}_out"),
        ]
    used = {i for n in nodes for i in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept + [i for i in new_inits if i.name in used])
    if not any(o.domain == _MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(_MS_DOMAIN, 1))
    onnx.save(model, str(dst))
    logger.info("per-token int8: %d matmuls quantized, %d kept fp32", len(targets), len(keep))
    return len(targets)


def _quantize_rows(x: str, nodes: list, opset: int) -> tuple[str, str, str]:
    """Append the nodes quantizing ``x`` per row (last axis); return (uint8, scale, low) names."""
    from onnx import TensorProto, helper

    p = f"{x}_pt"

    def reduce(op: str, out: str):
        # ReduceMax/ReduceMin take axes as an attribute up to opset 17, as an input from 18.
        if opset >= 18:
            return helper.make_node(op, [x, "pt_last_axis"], [out], keepdims=1)
        return helper.make_node(op, [x], [out], axes=[-1], keepdims=1)

    nodes += [
        reduce("ReduceMax", f"{p}_hi"),
        reduce("ReduceMin", f"{p}_lo"),
        helper.make_node("Sub", [f"{p}_hi", f"{p}_lo"], [f"{p}_range"]),
        helper.make_node("Div", [f"{p}_range", "pt_255"], [f"{p}_scale0"]),
        helper.make_node("Max", [f"{p}_scale0", "pt_eps"], [f"{p}_scale"]),  # constant rows: no 0/0
        helper.make_node("Sub", [x, f"{p}_lo"], [f"{p}_shifted"]),
        helper.make_node("Div", [f"{p}_shifted", f"{p}_scale"], [f"{p}_div"]),
        helper.make_node("Round", [f"{p}_div"], [f"{p}_round"]),
        helper.make_node("Cast", [f"{p}_round"], [f"{p}_uint8"], to=TensorProto.UINT8),
    ]
    return f"{p}_uint8", f"{p}_scale", f"{p}_lo"
