"""Parity on what is served: the server's encoder and padding, every (backend, precision) combination."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rewardserve.export.onnx_export import load_source
from rewardserve.export.parity import TokenMismatch, build_runs
from rewardserve.export.texts import builtin_texts
from rewardserve.service.engine.encoding import TextEncoder, pad_batch

from rewardserve.enums import Truncation

ort = pytest.importorskip("onnxruntime")
CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


def _encoder(bundle, max_length=64):
    return TextEncoder.from_file(bundle / "tokenizer.json", max_length)


def test_parity_batches_are_the_servers_own_encoding(tiny_bundle):
    bundle = tiny_bundle("bert", "pairwise")
    source, texts = load_source(bundle), builtin_texts(16)
    encoder = _encoder(bundle, source.spec.max_length)
    runs = build_runs(source, texts, ["input_ids", "attention_mask", "token_type_ids"], 8, encoder)
    served = pad_batch(encoder.encode_batch(texts.texts[:8], source.spec.truncation_side), source.pad_token_id)
    batch = runs[1].batches[0]
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(batch[name], served[name])
    hf = source.tokenizer(texts.texts[:8], truncation=True, max_length=source.spec.max_length, padding=True)
    assert batch["input_ids"].tolist() == hf["input_ids"]  # identical ids, asserted by build_runs too


def test_a_server_encoder_that_tokenizes_differently_stops_export(tiny_bundle):
    source = load_source(tiny_bundle("bert", "pairwise"))
    other = _encoder(tiny_bundle("gpt2", "pairwise"))  # another vocabulary: the ids cannot match
    with pytest.raises(TokenMismatch, match=r"parity text 0: the server's encoder gives .* Hugging Face tokenizer"):
        build_runs(source, builtin_texts(16), ["input_ids", "attention_mask"], 8, other)


def test_decoder_parity_feeds_the_servers_position_ids(tiny_bundle):
    from rewardserve.export import parity

    bundle = tiny_bundle("gpt2", "pairwise")
    source = load_source(bundle)
    encoder = _encoder(bundle, source.spec.max_length)
    # A graph that takes position_ids gets the server's (counting real tokens), not the tokenizer's (none).
    [batch] = parity._batches(source, builtin_texts(16).texts[:8], ["input_ids", "attention_mask", "position_ids"],
                              8, "right", encoder)
    expected = np.clip(np.cumsum(batch["attention_mask"], axis=1) - 1, 0, None)
    np.testing.assert_array_equal(batch["position_ids"], expected)
    runs = build_runs(source, builtin_texts(16), ["input_ids", "attention_mask"], 8, encoder)
    assert "batch8_left_pad" in [r.name for r in runs]  # decoders: the left-padded graph check stays


def test_every_combination_is_recorded_with_parity_speed_and_reference(exported):
    bundle, manifest = exported("bert", "pairwise")
    combos = {c.key: c for c in manifest.combinations}
    for key in ("onnxruntime:fp32:cpu", "onnxruntime:int8:cpu"):
        assert combos[key].passed and combos[key].items_per_s > 0 and combos[key].verified_on == "CPUExecutionProvider"
    fp16 = combos["onnxruntime:fp16:cuda"]
    if CUDA:
        assert fp16.verified_on == "CUDAExecutionProvider" and not fp16.note
    else:
        assert fp16.verified_on == "CPUExecutionProvider" and fp16.note.endswith("unverified on CUDA")
        assert fp16.reference_tolerance == 2e-2  # a GPU server checks it at load, at the fp16 gate
    assert manifest.host["cpu"] is not None and manifest.host["onnxruntime"] == ort.__version__
    with np.load(manifest.directory + "/" + manifest.reference_logits["file"]) as ref:
        feeds = {k: ref[k] for k in ref.files if k != "logits"}
        from rewardserve.service.backends.ort import OrtBackend
        from rewardserve.service.config import Provider

        fp32 = OrtBackend(manifest.variant("fp32").path(manifest.directory), Provider.cpu, 1).run(feeds)
        np.testing.assert_allclose(fp32, ref["logits"], atol=1e-4)  # PyTorch's logits on the served encoding
    assert manifest.reference_logits["n_texts"] == 16


def test_openvino_combinations_pass_their_gates(exported):
    pytest.importorskip("openvino", reason="openvino is not installed (the cpu extra)")
    from rewardserve.service.backends.openvino import has_native_bf16

    _, manifest = exported("bert", "classifier")
    combos = {c.key: c for c in manifest.combinations}
    fp32 = combos["openvino:fp32:cpu"]
    assert fp32.passed and fp32.parity["max_abs_logit_diff"] <= 1e-4 and fp32.verified_on == "OpenVINO:CPU:fp32"
    bf16 = combos["openvino:bf16:cpu"]
    if not has_native_bf16():
        assert not bf16.passed and "no native bf16" in bf16.failure
        return
    assert bf16.passed, bf16.failure
    assert bf16.verified_on == "OpenVINO:CPU:bf16" and bf16.parity["tolerances"]["max_abs_logit_diff"] == 5e-2
    assert 0 < bf16.parity["max_abs_logit_diff"] <= 5e-2 and bf16.parity["agreement"] >= 0.98
    assert bf16.reference_tolerance >= 5e-2 and bf16.items_per_s > 0


def test_openvino_int8_by_nncf_is_recorded_with_its_own_file_and_gate(exported):
    pytest.importorskip("nncf", reason="nncf is not installed (the export extra)")
    _, manifest = exported("bert", "classifier")
    int8 = next(c for c in manifest.combinations if c.key == "openvino:int8:cpu")
    from rewardserve.manifest import combination_sha256

    path = manifest.directory + "/" + int8.file
    assert int8.file == "model_openvino_int8.xml" and int8.sha256 == combination_sha256(path)
    assert int8.verified_on.startswith("OpenVINO:CPU:int8") and int8.parity["tolerances"]["agreement"] == 0.98
    assert int8.passed == (not int8.failure) and (int8.passed or int8.failure.startswith("int8: "))


def test_the_packed_graph_gets_its_own_int8_ir_that_scores_like_the_padded_one(exported):
    pytest.importorskip("nncf", reason="nncf is not installed (the export extra)")
    from rewardserve.export.openvino_int8 import OPENVINO_INT8_FILE, OPENVINO_INT8_PACKED_FILE
    from rewardserve.service.backends.openvino import OpenVinoBackend

    bundle, manifest = exported("bert", "classifier")
    combos = {c.key: c for c in manifest.combinations}
    packed = combos["openvino:int8:cpu:packed"]
    assert packed.packed and packed.file == OPENVINO_INT8_PACKED_FILE and packed.verified_on.endswith(":packed")
    assert packed.passed == (not packed.failure) and packed.items_per_s > 0
    encoder = _encoder(bundle)
    texts = ["short", "a much longer text " * 5, "mid length text here", "x", "another one " * 3]
    batch = pad_batch(encoder.encode_batch(texts, Truncation.right), manifest.pad_token_id)
    onnx = Path(manifest.directory)
    rows = OpenVinoBackend(onnx / OPENVINO_INT8_PACKED_FILE, "int8", threads=1).run(batch)
    padded = OpenVinoBackend(onnx / OPENVINO_INT8_FILE, "int8", threads=1).run(batch)
    np.testing.assert_allclose(rows, padded, atol=0.05)  # the same int8 weights, bf16 elsewhere


def test_openvino_int8_is_weight_only_by_default_and_static_on_request(tiny_bundle, tmp_path):
    pytest.importorskip("nncf", reason="nncf is not installed (the export extra)")
    import openvino as ov
    from rewardserve.export.config import ExportConfig, OpenVinoInt8Method
    from rewardserve.export.onnx_export import export_onnx
    from rewardserve.export.openvino_int8 import make_openvino_int8

    config = ExportConfig(bundle=tmp_path / "b", out=tmp_path / "o", builtin_texts=True)
    assert config.openvino_int8_method is OpenVinoInt8Method.weights
    with pytest.raises(ValueError, match="openvino_int8_method must be one of"):
        ExportConfig(bundle=tmp_path / "b", out=tmp_path / "o", builtin_texts=True, openvino_int8_method="dynamic")
    source = load_source(tiny_bundle("bert", "classifier"))
    graph = export_onnx(source, tmp_path / "model.onnx", 17)
    encoder = _encoder(tiny_bundle("bert", "classifier"))
    feeds = [pad_batch(encoder.encode_batch([t], Truncation.right), source.pad_token_id) for t in ("hi", "a b c")]
    kinds = {}
    for method in OpenVinoInt8Method:
        path = make_openvino_int8(method, graph, feeds, tmp_path / f"{method}.xml")
        kinds[method] = {op.get_type_name() for op in ov.Core().read_model(str(path)).get_ops()}
    assert "FakeQuantize" in kinds[OpenVinoInt8Method.static]  # activations quantized, calibrated
    assert "FakeQuantize" not in kinds[OpenVinoInt8Method.weights]  # weights only: activations left to the runtime


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs onnxruntime-gpu with CUDAExecutionProvider (CPU-only onnxruntime here)")
def test_fp16_parity_runs_on_cuda_when_there_is_one(exported):
    _, manifest = exported("bert", "pairwise")
    fp16 = next(c for c in manifest.combinations if c.key == "onnxruntime:fp16:cuda")
    assert fp16.verified_on == "CUDAExecutionProvider" and fp16.passed


def test_truncation_side_of_the_spec_is_what_parity_encodes(tiny_bundle):
    bundle = tiny_bundle("bert", "pairwise")
    source = load_source(bundle)
    long_text = " ".join(f"w{i}" for i in range(200))
    encoder = _encoder(bundle, source.spec.max_length)
    [ours] = encoder.encode_batch([long_text], source.spec.truncation_side)
    source.tokenizer.truncation_side = source.spec.truncation_side.value
    hf = source.tokenizer(long_text, truncation=True, max_length=source.spec.max_length)["input_ids"]
    assert ours.ids.tolist() == hf and ours.truncated and source.spec.truncation_side in tuple(Truncation)


def test_bert_classifiers_get_a_packed_graph_that_scores_like_the_padded_one(exported):
    pytest.importorskip("openvino", reason="openvino is not installed (the cpu extra)")
    from rewardserve.export.packed import PACKED_FILE
    from rewardserve.service.backends.openvino import OpenVinoBackend

    from rewardserve.manifest import combination_sha256

    bundle, manifest = exported("bert", "classifier")
    packed = next(c for c in manifest.combinations if c.key == "openvino:fp32:cpu:packed")
    assert packed.passed and packed.packed and packed.file == PACKED_FILE and packed.items_per_s > 0
    path = f"{manifest.directory}/{PACKED_FILE}"
    assert packed.sha256 == combination_sha256(path) and packed.parity["max_abs_logit_diff"] <= 1e-4
    # Mixed lengths: the rows the backend packs hold several texts; each scores as it does alone, padded.
    encoder = _encoder(bundle)
    texts = ["short", "a much longer text " * 5, "mid length text here", "x", "another one " * 3]
    batch = pad_batch(encoder.encode_batch(texts, Truncation.right), manifest.pad_token_id)
    backend = OpenVinoBackend(path, "fp32", threads=1)
    assert backend.provider == "OpenVINO:CPU:fp32:packed"
    expected = OpenVinoBackend(manifest.variant("fp32").path(manifest.directory), "fp32", threads=1).run(batch)
    np.testing.assert_allclose(backend.run(batch), expected, atol=1e-4)


def test_decoders_are_not_packed(tiny_bundle):
    from rewardserve.export.packed import packable

    assert packable(load_source(tiny_bundle("bert", "pairwise")).model)
    assert not packable(load_source(tiny_bundle("gpt2", "pairwise")).model)  # last-token pooling, causal mask
