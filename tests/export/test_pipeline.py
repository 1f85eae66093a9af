"""export_bundle end to end on tiny models of each family: files, manifest, parity, fusions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from rewardserve.export.config import ExportConfig, Tolerances
from rewardserve.export.pipeline import REFERENCE_FILE, export_bundle, failures

from rewardserve.enums import Precision
from rewardserve.files import file_sha256
from rewardserve.manifest import Manifest, check_spec_hash

CASES = [("bert", "pairwise"), ("bert", "classifier"), ("gpt2", "pairwise"), ("llama", "classifier"), ("qwen2", "pairwise")]
# Fused ops each family's fp16 (CUDA) graph must get from ONNX Runtime's optimizer; the CPU
# graphs (fp32, int8) keep attention unfused (export/optimize.py CPU_FUSE_ATTENTION).
CPU_UNFUSED = {"Attention", "EmbedLayerNormalization", "SkipLayerNormalization", "SkipSimplifiedLayerNormalization"}
EXPECTED_FUSIONS = {
    "bert": {"Attention", "SkipLayerNormalization", "EmbedLayerNormalization", "BiasGelu"},
    "gpt2": {"SkipLayerNormalization", "FastGelu"},
    "llama": {"SkipSimplifiedLayerNormalization", "SimplifiedLayerNormalization"},
    "qwen2": {"SkipSimplifiedLayerNormalization", "SimplifiedLayerNormalization"},
}


@pytest.mark.parametrize(("family", "kind"), CASES)
def test_all_variants_pass_parity(exported, family, kind):
    _, manifest = exported(family, kind)
    assert failures(manifest) == {}
    assert sorted(manifest.variants) == ["fp16", "fp32", "int8"]
    fp32 = manifest.variant(Precision.fp32)
    assert fp32.parity["max_abs_logit_diff"] <= 1e-4
    assert manifest.variant(Precision.fp16).parity["max_abs_logit_diff"] <= 2e-2
    for v in manifest.variants.values():
        assert v.parity["non_finite"] == 0
        assert v.throughput["sequences_per_s"] > 0 and v.throughput["tokens_per_s"] > 0
    runs = manifest.parity_data["runs"]
    assert "batch1" in runs and "batch8_right_pad" in runs
    assert ("batch8_left_pad" in runs) == (family != "bert")


@pytest.mark.parametrize(("family", "kind"), CASES)
def test_fusions_recorded(exported, family, kind):
    _, manifest = exported(family, kind)
    for precision, expected in (("fp16", EXPECTED_FUSIONS[family]), ("fp32", EXPECTED_FUSIONS[family] - CPU_UNFUSED)):
        fusions = manifest.variant(precision).fusions
        assert expected <= set(fusions), (precision, fusions)
        graph_ops = {n.op_type for n in onnx.load(manifest.variant(precision).path(manifest.directory)).graph.node}
        assert set(fusions) <= graph_ops
        assert ("Attention" in graph_ops) == (precision == "fp16" and family == "bert")


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_onnx_matches_torch_on_padded_batch(exported, family):
    """Check the graph directly (not through the report): mixed lengths, both padding sides."""
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    bundle, manifest = exported(family, "pairwise")
    tok = AutoTokenizer.from_pretrained(bundle)
    model = AutoModelForSequenceClassification.from_pretrained(bundle).eval()
    texts = ["hi", "a much longer text that needs many more tokens than the first one does", "mid length text"]
    # BERT's fused Attention reads the mask as per-row lengths (right padding only), as
    # the service pads; decoders must also survive left padding.
    for side in ("right",) if family == "bert" else ("right", "left"):
        tok.padding_side = side
        enc = tok(texts, padding=True, return_tensors="np")
        feeds = {n: enc[n].astype(np.int64) for n in manifest.variant("fp32").inputs}
        with torch.inference_mode():
            want = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()
        for precision, tol in (("fp32", 1e-4), ("fp16", 2e-2)):
            path = manifest.variant(precision).path(manifest.directory)
            got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["logits"], feeds)[0]
            assert got.shape == (3, 1)
            np.testing.assert_allclose(got, want, atol=tol, err_msg=f"{precision} {side}-padded")


def test_bundle_files_and_manifest(exported):
    bundle, manifest = exported("gpt2", "pairwise")
    out = Path(manifest.directory)
    for name in ("model_fp32.onnx", "model_fp16.onnx", "model_int8.onnx", REFERENCE_FILE, "tokenizer.json",
                 "tokenizer_config.json", "special_tokens_map.json", "manifest.json"):
        assert (out / name).is_file(), name
    assert (out / "reward.json").read_bytes() == (bundle / "reward.json").read_bytes()
    loaded = Manifest.load(out)
    assert loaded == manifest
    assert loaded.model_type == "gpt2" and len(loaded.source_fingerprint) == 64
    tok_cfg = json.loads((out / "tokenizer_config.json").read_text())
    assert tok_cfg["pad_token"] == "<|endoftext|>"
    from transformers import AutoTokenizer

    assert loaded.pad_token_id == AutoTokenizer.from_pretrained(out).pad_token_id
    assert loaded.reference["sha256"] == file_sha256(out / REFERENCE_FILE)
    assert loaded.reward_sha256 == file_sha256(out / "reward.json") and check_spec_hash(out, loaded) is None
    for v in loaded.variants.values():
        assert v.sha256 == file_sha256(v.path(out))
        assert v.opset == 17 and v.inputs == ["input_ids", "attention_mask"] and v.outputs == ["logits"]
    assert loaded.variant("fp16").providers == ["CUDAExecutionProvider"]
    assert loaded.variant("int8").providers == ["CPUExecutionProvider"]


def test_fp16_keeps_fp32_io_and_int8_is_quantized(exported):
    _, manifest = exported("bert", "pairwise")
    fp16 = onnx.load(manifest.variant("fp16").path(manifest.directory))
    assert fp16.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert all(i.type.tensor_type.elem_type == onnx.TensorProto.INT64 for i in fp16.graph.input)
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in fp16.graph.initializer)
    int8 = onnx.load(manifest.variant("int8").path(manifest.directory))
    ops = [n.op_type for n in int8.graph.node]
    # per_token (default): every dense MatMul but the 4 most sensitive runs on the integer kernel
    fp32_dense = len([n for n in onnx.load(manifest.variant("fp32").path(manifest.directory)).graph.node
                      if n.op_type == "MatMul" and any(i.name == n.input[1] for i in int8.graph.initializer)])
    assert ops.count("MatMulIntegerToFloat") >= 4 and fp32_dense == 4
    int8_weights = [t for t in int8.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) == ops.count("MatMulIntegerToFloat")
    assert "per_token" in manifest.variant("int8").method and "kept fp32" in manifest.variant("int8").method


def test_blockwise_int8_method(tiny_bundle, tmp_path):
    config = ExportConfig(bundle=tiny_bundle("bert", "pairwise"), out=tmp_path / "out",
                          precisions=(Precision.int8,), int8_method="blockwise", throughput=False, max_texts=8,
                          builtin_texts=True)
    manifest = export_bundle(config)
    int8 = onnx.load(manifest.variant("int8").path(manifest.directory))
    nbits = [n for n in int8.graph.node if n.op_type == "MatMulNBits"]
    assert nbits, "blockwise int8 writes MatMulNBits"
    for node in nbits:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["bits"] == 8 and attrs["accuracy_level"] == 4 and attrs["block_size"] == 32
    assert "blockwise" in manifest.variant("int8").method


def test_dynamic_int8_method(tiny_bundle, tmp_path):
    config = ExportConfig(bundle=tiny_bundle("bert", "classifier"), out=tmp_path / "out",
                          precisions=(Precision.int8,), int8_method="dynamic", throughput=False, max_texts=8,
                          builtin_texts=True,
                          tolerances=Tolerances(int8_min_agreement=None))
    manifest = export_bundle(config)
    ops = {n.op_type for n in onnx.load(manifest.variant("int8").path(manifest.directory)).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeMatMul", "QAttention"}
    assert manifest.variant("int8").method.startswith("int8 dynamic")
    with pytest.raises(ValueError, match="int8_block_size must be a power of two >= 16"):
        ExportConfig(bundle=config.bundle, out=tmp_path / "o2", int8_block_size=24)


def test_corrupted_variant_fails_the_gate(tiny_bundle, tmp_path, monkeypatch):
    import rewardserve.export.pipeline as pipeline

    real = pipeline.make_variant

    def corrupt_fp32(precision, src, dst, *args):
        real(precision, src, dst, *args)
        if precision is Precision.fp32:
            _scale_largest_initializer(dst, 1.5)
        return dst

    monkeypatch.setattr(pipeline, "make_variant", corrupt_fp32)
    config = ExportConfig(bundle=tiny_bundle("bert", "pairwise"), out=tmp_path / "out",
                          precisions=("fp32", "int8"), throughput=False, builtin_texts=True)
    manifest = export_bundle(config)
    fp32 = manifest.variant("fp32")
    assert not fp32.passed
    assert fp32.failure.startswith("fp32: max_abs_logit_diff=")
    assert "exceeds tolerance 0.0001" in fp32.failure
    assert manifest.variant("int8").passed  # derived from the uncorrupted graph
    assert failures(Manifest.load(tmp_path / "out")) == {"fp32": fp32.failure}


@pytest.mark.parametrize(("kind", "change", "metric"), [
    ("pairwise", lambda x: x + 0.2, "mean_abs_reward_diff"),  # shift: orderings and sigma(r_a - r_b) unchanged
    ("pairwise", lambda x: x * 3.0, "max_abs_pair_prob_diff"),
    ("classifier", lambda x: x * 3.0, "max_abs_prob_diff"),
])
def test_uniformly_shifted_or_scaled_int8_fails_despite_full_agreement(tiny_bundle, tmp_path, monkeypatch,
                                                                       kind, change, metric):
    import rewardserve.export.pipeline as pipeline

    real = pipeline.onnx_logits

    def distort_int8(path, runs, *args):
        logits = real(path, runs, *args)
        if path.name == "model_int8.onnx":  # what the int8 session returned, uniformly distorted
            logits = {k: change(v).astype(np.float32) for k, v in logits.items()}
        return logits

    monkeypatch.setattr(pipeline, "onnx_logits", distort_int8)
    # The shift/scale alone must fail: the max-logit gate stays off (as by default) and the mean gate
    # off for the scale cases, so the probability gate is the one that trips.
    tolerances = Tolerances() if metric == "mean_abs_reward_diff" else Tolerances(int8_max_mean_reward_diff=None)
    manifest = export_bundle(ExportConfig(bundle=tiny_bundle("bert", kind), out=tmp_path / "o", precisions=("int8",),
                                          throughput=False, tolerances=tolerances, builtin_texts=True))
    int8 = manifest.variant("int8")
    assert int8.parity["agreement"] == 1.0 and not int8.passed
    assert int8.failure.startswith(f"int8: {metric}=") and "exceeds tolerance" in int8.failure
    assert int8.parity["tolerances"][metric] == (0.03 if metric == "mean_abs_reward_diff" else 0.07)
    assert int8.parity["tolerances"]["agreement"] == 0.98


def test_manifest_records_size_of_error_values_and_gates(exported):
    _, manifest = exported("bert", "pairwise")
    par = manifest.variant("int8").parity
    assert par["prob_metric"] == "max_abs_pair_prob_diff"
    assert par["tolerances"] == {"max_abs_logit_diff": None, "agreement": 0.98, "mean_abs_reward_diff": 0.03,
                                 "max_abs_pair_prob_diff": 0.07}
    assert 0 < par["mean_abs_reward_diff"] <= 0.03 and 0 < par["max_abs_pair_prob_diff"] <= 0.07


def _scale_largest_initializer(path: Path, factor: float) -> None:
    from onnx import numpy_helper

    model = onnx.load(str(path))
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)) if t.data_type == 1 else 0)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * factor, init.name))
    onnx.save(model, str(path))


def test_parity_on_user_texts(tiny_bundle, tmp_path):
    rows = [{"chosen": f"Human: question {i}? Assistant: a helpful answer " + "word " * i,
             "rejected": f"Human: question {i}? Assistant: no"} for i in range(6)]
    texts = tmp_path / "dev.jsonl"
    texts.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    manifest = export_bundle(ExportConfig(bundle=tiny_bundle("bert", "pairwise"), out=tmp_path / "o",
                                          precisions=("fp32",), texts_file=texts, throughput=False))
    assert manifest.parity_data["n_texts"] == 12 and manifest.parity_data["paired"]
    assert manifest.variant("fp32").passed


def test_existing_out_needs_overwrite(tiny_bundle, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    config = ExportConfig(bundle=tiny_bundle("bert", "pairwise"), out=out, precisions=("fp32",), throughput=False,
                          builtin_texts=True)
    with pytest.raises(ValueError, match="exists and is not empty"):
        export_bundle(config)
    assert (out / "keep.txt").is_file()


def test_a_config_without_parity_texts_is_refused_naming_both_fixes(tmp_path):
    from rewardserve.export.texts import NoTextsError

    with pytest.raises(NoTextsError, match=r"no parity texts: pass texts_file .* or builtin_texts=True"):
        ExportConfig(bundle=tmp_path / "b", out=tmp_path / "o")  # no silent fallback to the built-in texts
    assert ExportConfig(bundle=tmp_path / "b", out=tmp_path / "o", builtin_texts=True).builtin_texts


def test_classifier_parity_texts_come_from_its_trained_text_column(tiny_bundle, tmp_path):
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle("bert", "classifier"), bundle)
    (bundle / "training_config.json").write_text(json.dumps({"kind": "classifier", "text_column": "body"}))
    data = tmp_path / "dev.csv"  # no text/tweet column: only the recipe's column can be read
    data.write_text("body,class\n" + "".join(f"text number {i} {'x ' * i},{i % 2}\n" for i in range(6)))
    manifest = export_bundle(ExportConfig(bundle=bundle, out=tmp_path / "o", precisions=("fp32",),
                                          texts_file=data, throughput=False))
    assert manifest.parity_data["n_texts"] == 6 and not manifest.parity_data["paired"]
