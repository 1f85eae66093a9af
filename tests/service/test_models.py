"""Loading ONNX bundles: variant choice, parity refusal, clear errors; runner and tokenizer behaviour."""

from __future__ import annotations

import asyncio
import json
import shutil

import numpy as np
import pytest
from rewardserve.service.backends.ort import OrtBackend
from rewardserve.service.config import Provider
from rewardserve.service.engine.models import ModelRegistry, choose_variant, padded
from rewardserve.service.metrics import ServiceMetrics

from rewardserve.bundle import BundleError
from rewardserve.enums import Precision, Truncation
from rewardserve.formatting import TextItem
from rewardserve.manifest import Manifest

from .conftest import make_config


def test_auto_precision_on_cpu_prefers_int8_and_explicit_wins(bundles):
    manifest = Manifest.load(bundles["pairwise"])
    assert choose_variant(manifest, Provider.cpu, None, False).precision is Precision.int8
    assert choose_variant(manifest, Provider.cuda, None, False).precision is Precision.fp32  # no fp16 exported
    assert choose_variant(manifest, Provider.cpu, Precision.fp32, False).precision is Precision.fp32
    with pytest.raises(BundleError, match="no fp16 variant"):
        choose_variant(manifest, Provider.cpu, Precision.fp16, False)


def test_failed_parity_is_refused_unless_allowed(bundles, tmp_path):
    bundle = shutil.copytree(bundles["classifier"], tmp_path / "b")
    data = json.loads((bundle / "manifest.json").read_text())
    data["variants"]["fp32"].update(passed=False, failure="max_abs_logit_diff 0.5 > 1e-4")
    (bundle / "manifest.json").write_text(json.dumps(data))
    manifest = Manifest.load(bundle)
    with pytest.raises(BundleError, match="failed its parity check .*max_abs_logit_diff"):
        choose_variant(manifest, Provider.cpu, Precision.fp32, False)
    with pytest.raises(BundleError, match="no variant passed"):
        choose_variant(manifest, Provider.cpu, None, False)
    assert not choose_variant(manifest, Provider.cpu, None, True).passed


def test_int8_variant_serves(bundles):
    registry = ModelRegistry.load(make_config(bundles, names=("pairwise",), precision="auto"), ServiceMetrics())
    try:
        model = registry.get("")
        assert model.info.precision == "int8"
        enc = model.prepare([TextItem("a text to score")], Truncation.left)
        assert np.all(np.isfinite(model.run_batch(enc)))
    finally:
        asyncio.run(registry.stop())


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda b: (b / "tokenizer.json").unlink(), "tokenizer.json: not found"),
        (lambda b: (b / "tokenizer.json").write_text("{not json"), "tokenizer.json: cannot load tokenizer"),
        (lambda b: (b / "model_fp32.onnx").write_bytes(b"garbage"), "model_fp32.onnx: cannot load ONNX model"),
        (lambda b: (b / "manifest.json").unlink(), "manifest.json: not found"),
        (lambda b: (b / "reward.json").write_text("[]"), "reward.json: must hold a JSON object"),
    ],
)
def test_broken_bundles_name_file_and_problem(bundles, tmp_path, breakage, message):
    bundle = shutil.copytree(bundles["classifier"], tmp_path / "b")
    breakage(bundle)
    config = make_config({"classifier": bundle}, names=("classifier",))
    with pytest.raises(BundleError) as e:
        ModelRegistry.load(config, ServiceMetrics(), warm_up=False)
    assert message in str(e.value)


def test_max_batch_tokens_below_max_length_is_refused(bundles):
    config = make_config(bundles, names=("classifier",), max_batch_tokens=32)
    with pytest.raises(ValueError, match="max_batch_tokens must be >= max_length of every model: classifier"):
        ModelRegistry.load(config, ServiceMetrics(), warm_up=False)


@pytest.mark.parametrize("name", ["classifier", "gpt2"])
def test_right_padded_batch_equals_solo_runs(bundles, name):
    from rewardserve.service.engine.encoding import TextEncoder

    bundle = bundles[name]
    runner = padded(OrtBackend(bundle / "model_fp32.onnx", Provider.cpu, 1), Manifest.load(bundle).pad_token_id)
    encoder = TextEncoder.from_file(bundle / "tokenizer.json", 64)
    texts = ["short", "a somewhat longer text with more tokens in it", "mid length text"]
    batch = runner(encoder.encode_batch(texts, Truncation.left))
    solo = np.concatenate([runner(encoder.encode_batch([t], Truncation.left)) for t in texts])
    assert np.allclose(batch, solo, atol=1e-5)
