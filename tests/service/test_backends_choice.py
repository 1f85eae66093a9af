"""Which (variant, backend, precision) serves a bundle: recorded speed on the export host, re-measured elsewhere."""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
from rewardserve.service.auto_batching import AUTO_BATCH_TOKENS
from rewardserve.service.backends import choice
from rewardserve.service.config import ModelSource, Provider, ServiceConfig
from rewardserve.service.engine.models import ScoringModel
from rewardserve.service.metrics import ServiceMetrics

from rewardserve.bundle import BundleError
from rewardserve.manifest import Manifest, Runtime

from .conftest import make_config

pytest.importorskip("openvino", reason="openvino is not installed (the cpu extra: pip install 'rewardserve[cpu]')")


def _copy(bundles, tmp_path, edit=None):
    """A copy of the pairwise bundle whose combinations' manifest records ``edit(key, combination)`` changes."""
    bundle = shutil.copytree(bundles["pairwise"], tmp_path / "b")
    data = json.loads((bundle / "manifest.json").read_text())
    for c in data["combinations"]:
        key = f"{c['runtime']}:{c['precision']}:{c['device']}" + (":packed" if c.get("packed") else "")
        c.update(edit(key, c) if edit else {})
    (bundle / "manifest.json").write_text(json.dumps(data))
    return bundle


def _load(bundle, **overrides):
    config = make_config({"b": bundle}, names=("b",), **{"precision": None, "max_batch_tokens": 0, **overrides})
    return ScoringModel.load(ModelSource("b", str(bundle)), config, ServiceMetrics(), ThreadPoolExecutor(1))


def _speeds(fast: str):
    def edit(key, c):
        return {"passed": True, "failure": "", "items_per_s": 100.0 if key == fast else 10.0}
    return edit


def test_export_records_every_combination_with_the_host(bundles):
    manifest = Manifest.load(bundles["pairwise"])
    keys = {c.key for c in manifest.combinations}
    nncf = {"openvino:int8:cpu"} if importlib.util.find_spec("nncf") else set()
    assert {"onnxruntime:fp32:cpu", "onnxruntime:int8:cpu", "onnxruntime:fp32:cuda", "openvino:fp32:cpu",
            "openvino:bf16:cpu", *nncf} <= keys
    assert manifest.host["cpu_flags"] is not None and manifest.host["openvino"]
    assert (bundles["pairwise"] / manifest.reference_logits["file"]).is_file()
    cuda = next(c for c in manifest.combinations if c.key == "onnxruntime:fp32:cuda")
    assert cuda.verified_on == "CPUExecutionProvider" and "unverified on CUDA" in cuda.note  # no GPU here


@pytest.mark.parametrize(("fast", "provider"), [("openvino:bf16:cpu", "OpenVINO:CPU:bf16"),
                                                ("onnxruntime:int8:cpu", "CPUExecutionProvider")])
def test_auto_on_the_export_host_serves_the_fastest_recorded(bundles, tmp_path, fast, provider, caplog):
    from rewardserve.service.backends.openvino import has_native_bf16

    if "bf16" in fast and not has_native_bf16():
        pytest.skip("this CPU has no native bf16")
    with caplog.at_level(logging.INFO):
        model = _load(_copy(bundles, tmp_path, _speeds(fast)))
    assert model.backend.provider == provider and model.served.reason.startswith(fast)
    assert "fastest that passed parity on the export host" in model.served.reason
    assert model.info.execution_provider == provider and model.info.precision == fast.split(":")[1]
    runtime = Runtime(fast.split(":")[0])
    expected = AUTO_BATCH_TOKENS["openvino" if runtime is Runtime.openvino else "cpu"]
    assert model.batcher.max_batch_tokens == max(expected, 64)  # the token budget follows the backend
    assert any(fast in r.message for r in caplog.records if r.name.endswith("models"))  # logged with the reason


def test_another_host_re_measures_within_the_budget(bundles, tmp_path, monkeypatch):
    bundle = _copy(bundles, tmp_path, lambda key, c: {"passed": True, "failure": ""})
    monkeypatch.setattr(choice, "host_fingerprint", lambda: {**Manifest.load(bundle).host, "cpu": "Other CPU 9000"})
    model = _load(bundle, selection_budget_s=0.5)
    assert "host differs from the export host (cpu: " in model.served.reason and "re-measured" in model.served.reason
    assert "Other CPU 9000" in model.served.reason and "reference logits within" in model.served.reason


def test_explicit_backend_and_precision_and_failed_parity(bundles, tmp_path):
    bundle = _copy(bundles, tmp_path, lambda key, c: {"passed": "bf16" not in key,
                                                      "failure": "bf16: agreement 0.5" if "bf16" in key else ""})
    # Packed or not, whichever was faster at export: both are OpenVINO fp32.
    assert _load(bundle, backend="openvino", precision="fp32").backend.provider.startswith("OpenVINO:CPU:fp32")
    assert _load(bundle, backend="onnxruntime", precision="int8").backend.path.name == "model_int8.onnx"
    with pytest.raises(BundleError, match=r"openvino:bf16:cpu(:packed)?: failed parity \(bf16: agreement 0.5\)"):
        _load(bundle, backend="openvino", precision="bf16")


def test_a_combination_off_the_reference_logits_is_passed_over(bundles, tmp_path, caplog):
    def edit(key, c):  # the fastest one cannot meet its (impossible) bound on this host
        fast = key == "openvino:fp32:cpu"
        return {"passed": True, "failure": "", "items_per_s": 100.0 if fast else 10.0,
                "reference_tolerance": -1.0 if fast else c["reference_tolerance"]}

    with caplog.at_level(logging.WARNING):
        model = _load(_copy(bundles, tmp_path, edit))
    assert model.served.reason.startswith("onnxruntime:int8:cpu")  # the next: a tie at 10, broken by preference
    assert any("openvino:fp32:cpu is off the reference logits" in r.message for r in caplog.records)


def test_a_bundle_exported_before_combinations_serves_onnxruntime_as_before(bundles, tmp_path):
    bundle = shutil.copytree(bundles["pairwise"], tmp_path / "old")
    data = json.loads((bundle / "manifest.json").read_text())
    for key in ("combinations", "host", "reference_logits"):
        data.pop(key)
    data["schema_version"] = 1
    (bundle / "manifest.json").write_text(json.dumps(data))
    model = _load(bundle)
    assert model.backend.provider == "CPUExecutionProvider" and model.info.precision == "int8"
    with pytest.raises(BundleError, match="exported before backends were recorded"):
        _load(bundle, backend="openvino")
    with pytest.raises(BundleError, match="exported before backends were recorded"):
        _load(bundle, packing="on")  # not a quiet fall back to padded ONNX Runtime


def test_openvino_int8_serves_its_own_file_and_a_changed_file_is_refused(bundles, tmp_path):
    pytest.importorskip("nncf", reason="nncf is not installed (the export extra)")
    bundle = _copy(bundles, tmp_path, lambda key, c: {"passed": True, "failure": ""})
    # One worker: OpenVINO 2026.4.1 computes this weight-only int8 IR wrong with two streams, which the load-time
    # reference check refuses (benchmarks/README.md, "Sixteen listeners, weight-only OpenVINO int8").
    model = _load(bundle, backend="openvino", precision="int8", packing="off", inference_workers=1)
    assert model.backend.path.name == "model_openvino_int8.xml" and model.info.precision == "int8"
    assert model.backend.provider.startswith("OpenVINO:CPU:int8")
    packed = _load(bundle, backend="openvino", precision="int8", packing="on", inference_workers=1)  # its own IR
    assert packed.backend.path.name == "model_openvino_int8_packed.xml" and packed.backend.provider.endswith(":packed")
    with open(bundle / "model_openvino_int8.bin", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match=r"model_openvino_int8.xml: missing or changed since export"):
        _load(bundle, backend="openvino", precision="int8", packing="off", inference_workers=1)


def test_a_packed_combination_batches_without_a_padding_floor_and_counts_its_rows(bundles, tmp_path):
    import asyncio

    from rewardserve.service.domain import ScoreOptions

    from rewardserve.formatting import TextItem

    model = _load(_copy(bundles, tmp_path, _speeds("openvino:fp32:cpu:packed")), min_padding_efficiency=None)
    assert model.backend.provider == "OpenVINO:CPU:fp32:packed" and model.served.packed
    assert model.batcher.min_padding_efficiency == 0.0  # rows are packed: padding between items is gone
    assert model.batcher.max_batch_tokens == AUTO_BATCH_TOKENS["openvino-packed"]
    assert model.batcher.padded_tokens([20, 10, 5]) == 35  # one packed row, not 3 x 20
    model.backend.row_tokens = 8  # the batcher counts rows as the backend packs them: [7], [5, 3], [2]
    assert model.batcher.padded_tokens([5, 3, 7, 2]) == 3 * 8
    # --packing off: the fastest padded one, with the padding floor and items x longest.
    def speeds(key, c):
        return {"passed": True, "failure": "", "items_per_s": {"openvino:fp32:cpu:packed": 100.0,
                                                               "openvino:fp32:cpu": 50.0}.get(key, 10.0)}

    padded = _load(_copy(bundles, tmp_path / "p", speeds), min_padding_efficiency=None, packing="off")
    assert padded.backend.provider == "OpenVINO:CPU:fp32" and not padded.served.packed
    assert padded.batcher.min_padding_efficiency > 0 and padded.batcher.padded_tokens([20, 10, 5]) == 60
    texts = ["short", "a much longer text " * 4, "mid length text", "x"]

    async def score(m):
        m.batcher.start()
        try:
            return await m.score([TextItem(t) for t in texts], ScoreOptions(), deadline=float("inf"))
        finally:
            await m.batcher.stop()

    got, expected = asyncio.run(score(model)), asyncio.run(score(padded))
    for a, b in zip(got, expected, strict=True):
        assert a.logits == pytest.approx(b.logits, abs=1e-4)
    with pytest.raises(BundleError, match=r"no combination to serve for backend auto, precision auto, packed on cpu"):
        _load(bundles["gpt2"], packing="on")  # decoders have no packed graph


def test_config_refuses_combinations_that_cannot_go_together():
    models = (ModelSource("hh", "x"),)
    assert ServiceConfig(models=models, backend="openvino", precision="bf16").backend is Runtime.openvino
    assert ServiceConfig(models=models, backend="auto").backend is None
    for values, message in ((dict(backend="openvino", provider="cuda"), "runs on the CPU"),
                            (dict(backend="onnxruntime", precision="bf16"), "bf16 is OpenVINO's"),
                            (dict(backend="openvino", precision="fp16"), "not fp16"),
                            (dict(backend="tensorrt"), r"backend: expected auto or one of \['onnxruntime', 'openvino'\]"),
                            (dict(precision="fp8"), "precision: expected auto or one of")):
        with pytest.raises(ValueError, match=message):
            ServiceConfig(models=models, **values)
    config = ServiceConfig(models=models)
    assert config.batch_tokens(Provider.cpu, 64, Runtime.openvino) == AUTO_BATCH_TOKENS["openvino"]
    assert config.batch_tokens(Provider.cpu, 64, Runtime.onnxruntime) == AUTO_BATCH_TOKENS["cpu"]
