"""Backends: OpenVINO beside ONNX Runtime on the same padded batches, and no silent provider change."""

from __future__ import annotations

import logging
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from rewardserve.service.backends import ort as ort_backend
from rewardserve.service.backends.ort import OrtBackend, ProviderUnavailable
from rewardserve.service.config import Provider
from rewardserve.service.engine.encoding import TextEncoder, pad_batch
from rewardserve.service.engine.models import ScoringModel
from rewardserve.service.metrics import ServiceMetrics

from rewardserve.bundle import BundleError, RewardSpec
from rewardserve.enums import Truncation
from rewardserve.manifest import Manifest

from .conftest import make_config

TEXTS = ["Thanks!", "You are an idiot and I hate you.", "\n\nHuman: How do I bake bread?\n\nAssistant: Knead it.",
         "lol", "The weather today is lovely; let's go for a walk in the park and have a picnic. " * 3]


def _batch(bundle):
    spec = RewardSpec.load(bundle)
    encoder = TextEncoder.from_file(bundle / "tokenizer.json", spec.max_length)
    return pad_batch(encoder.encode_batch(TEXTS, Truncation.right), Manifest.load(bundle).pad_token_id)


def _openvino():
    return pytest.importorskip("rewardserve.service.backends.openvino",
                               reason="openvino is not installed (the cpu extra: pip install 'rewardserve[cpu]')")


def test_openvino_fp32_equals_onnxruntime_fp32_on_a_served_batch(bundles):
    openvino = _openvino()
    path = Manifest.load(bundles["classifier"]).variant("fp32").path(bundles["classifier"])
    batch = _batch(bundles["classifier"])
    expected = OrtBackend(path, Provider.cpu, 1).run(batch)
    backend = openvino.OpenVinoBackend(path, "fp32", threads=1)
    assert backend.provider == "OpenVINO:CPU:fp32" and backend.pad_to_multiple == 0
    got = backend.run(batch)
    assert got.dtype == np.float32 and got.shape == expected.shape == (len(TEXTS), 2)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_openvino_bf16_is_close_and_says_bf16(bundles):
    openvino = _openvino()
    if not openvino.has_native_bf16():
        with pytest.raises(ValueError, match="AVX-512 BF16 or AMX"):
            openvino.OpenVinoBackend(Manifest.load(bundles["classifier"]).variant("fp32").path(bundles["classifier"]),
                                     "bf16")
        pytest.skip("this CPU has no native bf16: refused as it should be")
    path = Manifest.load(bundles["classifier"]).variant("fp32").path(bundles["classifier"])
    batch = _batch(bundles["classifier"])
    backend = openvino.OpenVinoBackend(path, "bf16", threads=1)
    assert backend.provider == "OpenVINO:CPU:bf16"  # what OpenVINO reports it computes in, not the hint
    exact = OrtBackend(path, Provider.cpu, 1).run(batch)
    diff = np.abs(backend.run(batch) - exact).max()
    assert 0 < diff < 5e-2  # really bf16 (not exact), and within the export gate


def test_openvino_streams_serve_concurrent_workers_like_one(bundles):
    openvino = _openvino()
    path = Manifest.load(bundles["pairwise"]).variant("fp32").path(bundles["pairwise"])
    batch = _batch(bundles["pairwise"])
    backend = openvino.OpenVinoBackend(path, "fp32", threads=1, streams=2)
    assert backend.streams == 2
    serial = backend.run(batch)
    with ThreadPoolExecutor(4) as pool:  # more callers than infer requests: they wait their turn
        results = list(pool.map(lambda _: backend.run(batch), range(16)))
    for r in results:
        np.testing.assert_array_equal(r, serial)


def _force_cuda_available(monkeypatch):
    # The resolution step passes (CUDA "offered"), then ONNX Runtime, CPU-only here, creates the
    # session on the CPU provider alone: exactly what a broken CUDA install does.
    real = ort_backend.ort.get_available_providers
    monkeypatch.setattr(ort_backend.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *real()])


def test_provider_cuda_that_falls_back_stops_with_the_reason(bundles, monkeypatch):
    _force_cuda_available(monkeypatch)
    path = Manifest.load(bundles["pairwise"]).variant("fp32").path(bundles["pairwise"])
    with pytest.raises(ProviderUnavailable, match=r"provider cuda asked for, but onnxruntime .* CUDA provider failed"):
        OrtBackend(path, Provider.cuda, 1)
    config = make_config(bundles, names=("pairwise",), provider="cuda", precision="fp32")
    with pytest.raises(ProviderUnavailable, match="provider cuda"):  # through the engine: the server stops
        ScoringModel.load(config.models[0], config, ServiceMetrics(), ThreadPoolExecutor(1))


def test_provider_auto_logs_the_fallback_and_runs_on_cpu(bundles, monkeypatch, caplog):
    _force_cuda_available(monkeypatch)
    config = make_config(bundles, names=("pairwise",), provider="auto", precision="fp32")
    with caplog.at_level(logging.WARNING):
        model = ScoringModel.load(config.models[0], config, ServiceMetrics(), ThreadPoolExecutor(1))
    assert model.backend.provider == "CPUExecutionProvider"
    assert model.served.device is Provider.cpu and model.backend.pad_to_multiple == 0
    assert any("provider auto" in r.message and "CPU" in r.message for r in caplog.records)
    assert model.batcher.max_batch_tokens == config.batch_tokens(Provider.cpu, 64)


def test_without_openvino_auto_serves_onnxruntime_and_openvino_is_refused_by_name(bundles, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if the cpu extra's openvino were not installed
    monkeypatch.delitem(sys.modules, "rewardserve.service.backends.openvino", raising=False)

    def load(**overrides):
        config = make_config(bundles, names=("pairwise",), **{"precision": None, **overrides})
        return ScoringModel.load(config.models[0], config, ServiceMetrics(), ThreadPoolExecutor(1))

    assert load().backend.provider == "CPUExecutionProvider"
    with pytest.raises(BundleError, match=r"openvino:fp32:cpu: openvino is not installed"):
        load(backend="openvino")
