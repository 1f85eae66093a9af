"""Request metrics keep a bounded set of model labels, even before the models have loaded."""

from __future__ import annotations

import threading

import grpc
import pytest
from rewardserve.service.engine.models import ModelRegistry

from rewardserve.kserve import grpc_predict_v2_pb2 as kserve_pb
from rewardserve.kserve import grpc_predict_v2_pb2_grpc as kserve_grpc
from rewardserve.v1 import reward_pb2 as pb
from rewardserve.v1 import reward_pb2_grpc

from .conftest import ServerThread, make_config

pytestmark = pytest.mark.e2e


def test_unknown_model_names_during_loading_share_one_label(bundles):
    release = threading.Event()

    def slow_loader(config, metrics):
        release.wait(60)  # every request below arrives while the models are still loading
        return ModelRegistry.load(config, metrics)

    server = ServerThread(make_config(bundles, names=("classifier",)), wait_ready=False, loader=slow_loader)
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub, kserve = reward_pb2_grpc.RewardServiceStub(channel), kserve_grpc.GRPCInferenceServiceStub(channel)
            for i in range(25):
                for call, request in ((stub.Score, pb.ScoreRequest(items=[pb.Item(text="x")],
                                                                   options=pb.ScoreOptions(model=f"no-such-{i}"))),
                                      (kserve.ModelInfer, kserve_pb.ModelInferRequest(model_name=f"no-such-{i}"))):
                    with pytest.raises(grpc.RpcError) as e:
                        call(request, timeout=10)
                    assert e.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INVALID_ARGUMENT)
            with pytest.raises(grpc.RpcError):  # a configured model keeps its own label
                stub.Score(pb.ScoreRequest(items=[pb.Item(text="x")], options=pb.ScoreOptions(model="classifier")),
                           timeout=10)
        registry = server.server.metrics.registry
        labels = {s.labels["model"] for family in registry.collect() if family.name == "rewardserve_requests"
                  for s in family.samples if s.name.endswith("_total")}
    finally:
        release.set()
        server.call(server.server.wait_ready())
        server.stop()
    assert labels == {"unknown", "classifier"}
