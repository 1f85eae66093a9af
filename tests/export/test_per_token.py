"""Per-token int8 on a two-layer graph: the numbers the graph computes and what stays fp32."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from rewardserve.export.per_token import fake_quantize_rows, quantize_per_token, quantize_weight, sensitivity

RNG = np.random.default_rng(0)
W1 = RNG.normal(size=(16, 32)).astype(np.float32)
W2 = RNG.normal(size=(32, 8)).astype(np.float32)


def _graph(path, opset=17):
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="first"),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["y"], name="second")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "t", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(W1, "w1"), numpy_helper.from_array(W2, "w2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.save(model, str(path))
    return path


def _run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize("opset", [17, 18])
def test_graph_computes_the_documented_quantization(tmp_path, opset):
    src = _graph(tmp_path / "fp32.onnx", opset)
    assert quantize_per_token(src, tmp_path / "int8.onnx") == 2
    x = RNG.normal(size=(3, 5, 16)).astype(np.float32)
    x[0, 1] *= 40  # one loud token: a per-tensor scale would crush every other token
    got = _run(tmp_path / "int8.onnx", x)

    def layer(a, w):
        wq, ws = quantize_weight(w)
        return fake_quantize_rows(a) @ (wq.astype(np.float32) * ws)

    expected = layer(np.maximum(layer(x, W1), 0), W2)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)
    exact = np.maximum(x @ W1, 0) @ W2
    quiet = np.ones(x.shape[:2], bool)
    quiet[0, 1] = False  # the other tokens keep their precision despite the loud one
    rel = np.linalg.norm(got[quiet] - exact[quiet]) / np.linalg.norm(exact[quiet])
    assert rel < 0.02
    ops = [n.op_type for n in onnx.load(str(tmp_path / "int8.onnx")).graph.node]
    assert ops.count("MatMulIntegerToFloat") == 2 and "MatMul" not in ops


def test_a_row_scores_the_same_in_any_batch(tmp_path):
    src = _graph(tmp_path / "fp32.onnx")
    quantize_per_token(src, tmp_path / "int8.onnx")
    x = RNG.normal(size=(4, 6, 16)).astype(np.float32) * np.array([1, 30, 0.01, 5], np.float32)[:, None, None]
    batched = _run(tmp_path / "int8.onnx", x)
    for i in range(len(x)):
        np.testing.assert_array_equal(_run(tmp_path / "int8.onnx", x[i : i + 1])[0], batched[i])


def test_keep_fp32_and_sensitivity(tmp_path):
    src = _graph(tmp_path / "fp32.onnx")
    x = RNG.normal(size=(2, 7, 16)).astype(np.float32)
    errors = sensitivity(src, [{"x": x}])
    # keyed by output tensor ("h", "y"), not by node name ("first", "second")
    assert set(errors) == {"h", "y"} and all(0 < e < 0.05 for e in errors.values())
    assert quantize_per_token(src, tmp_path / "int8.onnx", keep_fp32=["y"]) == 1
    nodes = {n.name: n.op_type for n in onnx.load(str(tmp_path / "int8.onnx")).graph.node}
    assert nodes["second"] == "MatMul" and "first" not in nodes
    exact = np.maximum(x @ W1, 0) @ W2
    assert np.linalg.norm(_run(tmp_path / "int8.onnx", x) - exact) / np.linalg.norm(exact) < 0.02


def test_bad_int8_settings_are_named(tmp_path):
    from rewardserve.export.config import ExportConfig

    with pytest.raises(ValueError, match="int8_keep_fp32 must be >= 0, got -1"):
        ExportConfig(bundle=tmp_path / "b", out=tmp_path / "o", int8_keep_fp32=-1)
    with pytest.raises(ValueError, match="int8_method must be one of"):
        ExportConfig(bundle=tmp_path / "b", out=tmp_path / "o", int8_method="per_row")


def _unnamed_graph(path, outputs=("h", "y")):
    # Exporters may leave node names empty: every node here is named "".
    nodes = [helper.make_node("MatMul", ["x", "w1"], [outputs[0]]),
             helper.make_node("Relu", [outputs[0]], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], [outputs[1]])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "t", 16])],
        [helper.make_tensor_value_info(outputs[1], TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(W1, "w1"), numpy_helper.from_array(W2, "w2")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_unnamed_nodes_are_matched_by_output_tensor(tmp_path):
    src = _unnamed_graph(tmp_path / "fp32.onnx")
    x = RNG.normal(size=(2, 7, 16)).astype(np.float32)
    errors = sensitivity(src, [{"x": x}])
    assert set(errors) == {"h", "y"}  # not {""}
    # keep the second matmul: only the first is rewritten, the unnamed Relu and second MatMul stay
    assert quantize_per_token(src, tmp_path / "int8.onnx", keep_fp32=["y"]) == 1
    graph = onnx.load(str(tmp_path / "int8.onnx")).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("MatMulIntegerToFloat") == 1 and ops.count("MatMul") == 1 and ops.count("Relu") == 1
    kept = next(n for n in graph.node if n.op_type == "MatMul")
    assert list(kept.input) == ["r", "w2"] and list(kept.output) == ["y"]
    exact = np.maximum(x @ W1, 0) @ W2
    assert np.linalg.norm(_run(tmp_path / "int8.onnx", x) - exact) / np.linalg.norm(exact) < 0.02
    # both quantized: the two unnamed matmuls get distinct intermediate tensors
    assert quantize_per_token(src, tmp_path / "all.onnx") == 2
    names = [o for n in onnx.load(str(tmp_path / "all.onnx")).graph.node for o in n.output]
    assert len(names) == len(set(names))
    assert np.linalg.norm(_run(tmp_path / "all.onnx", x) - exact) / np.linalg.norm(exact) < 0.02


def test_duplicate_outputs_and_unknown_keep_names_fail_loudly(tmp_path):
    src = _unnamed_graph(tmp_path / "dup.onnx", outputs=("h", "h"))
    with pytest.raises(ValueError, match=r"written by more than one node: \['h'\]"):
        quantize_per_token(src, tmp_path / "int8.onnx")
    with pytest.raises(ValueError, match=r"written by more than one node"):
        sensitivity(src, [])
    src = _unnamed_graph(tmp_path / "fp32.onnx")
    with pytest.raises(ValueError, match=r"keep_fp32 names no dense MatMul output: \['first'\]"):
        quantize_per_token(src, tmp_path / "int8.onnx", keep_fp32=["first"])
