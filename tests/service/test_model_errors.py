"""``on_model_error``: a model that fails to load stops the server (fail) or is left out (skip)."""

from __future__ import annotations

import asyncio
import shutil

import grpc
import pytest
from rewardserve.service.config import ModelErrorPolicy, ServiceConfig
from rewardserve.service.engine.models import ModelRegistry
from rewardserve.service.metrics import ServiceMetrics

from rewardserve.bundle import BundleError
from rewardserve.v1 import reward_pb2 as pb
from rewardserve.v1 import reward_pb2_grpc

from .conftest import ServerThread, make_config


@pytest.fixture
def broken(bundles, tmp_path):
    """A copy of the classifier bundle without its ONNX file."""
    bundle = shutil.copytree(bundles["classifier"], tmp_path / "broken")
    (bundle / "model_fp32.onnx").unlink()
    return bundle


def test_policy_is_a_str_enum_and_validated(bundles):
    config = make_config(bundles, names=("classifier",), on_model_error="skip")
    assert config.on_model_error is ModelErrorPolicy.skip and config.on_model_error == "skip"
    assert make_config(bundles, names=("classifier",)).on_model_error is ModelErrorPolicy.fail  # the default
    with pytest.raises(ValueError, match="on_model_error"):
        make_config(bundles, names=("classifier",), on_model_error="ignore")
    assert ServiceConfig.from_sources({}, {"REWARDSERVE_ON_MODEL_ERROR": "skip",
                                           "REWARDSERVE_MODELS": f"c={bundles['classifier']}"}).on_model_error \
        is ModelErrorPolicy.skip


def test_fail_raises_the_first_error(bundles, broken):
    config = make_config({**bundles, "broken": broken}, names=("classifier", "broken"))
    with pytest.raises(BundleError, match="model_fp32.onnx: not found"):
        ModelRegistry.load(config, ServiceMetrics(), warm_up=False)


def test_skip_serves_the_healthy_models_and_names_the_skipped(bundles, broken, caplog):
    config = make_config({**bundles, "broken": broken}, names=("classifier", "broken"), on_model_error="skip")
    registry = ModelRegistry.load(config, ServiceMetrics(), warm_up=False)
    try:
        assert sorted(registry.models) == ["classifier"] and registry.default == "classifier"
        assert "model_fp32.onnx: not found" in registry.failed["broken"]
        assert "model broken failed to load, skipped" in caplog.text and "model_fp32.onnx: not found" in caplog.text
        with pytest.raises(Exception, match="'broken' failed to load and is not served"):
            registry.get("broken")
    finally:
        asyncio.run(registry.stop())


def test_skip_with_every_model_broken_raises_listing_each(bundles, broken, tmp_path):
    other = shutil.copytree(bundles["gpt2"], tmp_path / "other")
    (other / "reward.json").write_text("{")
    config = make_config({"a": broken, "b": other}, names=("a", "b"), on_model_error="skip")
    with pytest.raises(BundleError) as e:
        ModelRegistry.load(config, ServiceMetrics(), warm_up=False)
    message = str(e.value)
    assert message.startswith("no model could be loaded: a: ")
    assert "model_fp32.onnx: not found" in message and "b: " in message and "reward.json: invalid JSON" in message


def test_a_skipped_default_model_is_not_replaced_by_another(bundles, broken):
    """Requests for the default get NOT_FOUND, never another model's scores; named models still serve."""
    server = ServerThread(make_config({**bundles, "broken": broken}, names=("broken", "classifier"),
                                      on_model_error="skip"))
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub = reward_pb2_grpc.RewardServiceStub(channel)
            with pytest.raises(grpc.RpcError) as e:
                stub.Score(pb.ScoreRequest(items=[pb.Item(text="hi")]), timeout=10)
            assert e.value.code() is grpc.StatusCode.NOT_FOUND
            assert "'broken' failed to load" in e.value.details() and "/" not in e.value.details()  # no paths
            ok = stub.Score(pb.ScoreRequest(items=[pb.Item(text="hi")], options=pb.ScoreOptions(model="classifier")),
                            timeout=10)
            assert ok.model == "classifier" and len(ok.scores) == 1
            listing = stub.ListModels(pb.ListModelsRequest(), timeout=10)
            assert [m.name for m in listing.models] == ["classifier"] and listing.default_model == "broken"
    finally:
        server.stop()
