"""A model whose batcher task dies is NOT_SERVING in health; it is restarted, or the server exits 1."""

from __future__ import annotations

import logging
import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rewardserve.service.edge.server import model_health_name, run_server
from rewardserve.service.engine.models import ModelRegistry

from rewardserve.v1 import reward_pb2 as pb
from rewardserve.v1 import reward_pb2_grpc

from .conftest import ServerThread, make_config

pytestmark = pytest.mark.e2e
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def break_once(batcher) -> None:
    """The next batch the loop forms kills it (a bug in the loop), once."""
    take = batcher._take_batch

    def broken():
        batcher._take_batch = take
        raise RuntimeError("injected batcher bug")

    batcher._take_batch = broken


def test_a_dead_batcher_turns_health_not_serving_then_restarts(bundles, caplog):
    server = ServerThread(make_config(bundles, names=("classifier", "pairwise"), on_batcher_failure="restart"))
    model_name, overall = model_health_name("classifier"), ""
    try:
        with grpc.insecure_channel(server.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            stub = reward_pb2_grpc.RewardServiceStub(channel)
            watch = health.Watch(health_pb2.HealthCheckRequest(service=model_name), timeout=60)
            seen = [next(watch).status]
            assert health.Check(health_pb2.HealthCheckRequest(service=overall)).status == SERVING
            server.loop.call_soon_threadsafe(break_once, server.server.servicer.registry.models["classifier"].batcher)
            with caplog.at_level(logging.ERROR), pytest.raises(grpc.RpcError) as e:
                stub.Score(pb.ScoreRequest(items=[pb.Item(text="hi")]), timeout=30)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
            seen += [next(watch).status, next(watch).status]
            watch.cancel()
            # Restarted: the model serves again.
            assert len(stub.Score(pb.ScoreRequest(items=[pb.Item(text="hi")]), timeout=30).scores) == 1
            assert health.Check(health_pb2.HealthCheckRequest(service=overall)).status == SERVING
            other = health.Check(health_pb2.HealthCheckRequest(service=model_health_name("pairwise")))
            assert other.status == SERVING
    finally:
        server.stop()
    assert seen == [SERVING, NOT_SERVING, SERVING]
    assert any("classifier: batcher died; health NOT_SERVING" in r.getMessage() for r in caplog.records)


async def test_a_dead_batcher_with_on_batcher_failure_exit_stops_the_server_with_exit_code_1(bundles, caplog):
    config = make_config(bundles, names=("classifier",), on_batcher_failure="exit", grace_period_s=0.5)
    loaded = threading.Event()

    def loader(config, metrics):
        registry = ModelRegistry.load(config, metrics)
        batcher = registry.models["classifier"].batcher

        async def dies_at_once():
            raise RuntimeError("injected batcher bug")

        batcher._loop = dies_at_once  # the task the server starts dies before it forms a batch
        loaded.set()
        return registry

    with caplog.at_level(logging.ERROR):
        code = await run_server(config, loader=loader)
    assert loaded.is_set() and code == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("classifier: batcher died; health NOT_SERVING" in m and "whole server" in m for m in messages)
    assert any("on_batcher_failure=exit" in m and "exit code 1" in m for m in messages)


def test_a_restarted_model_turns_serving_only_once_its_batcher_is_alive(bundles):
    # An edge's batcher (serve --engine shared) restarts by reconnecting to the new engine in the
    # background; until then its calls get UNAVAILABLE, so its health must not say SERVING.
    server = ServerThread(make_config(bundles, names=("classifier",), on_batcher_failure="restart"))
    try:
        batcher = server.server.servicer.registry.models["classifier"].batcher
        asked, restart = threading.Event(), batcher.restart
        batcher.restart = asked.set  # asked to restart; alive again only when the test says so
        with grpc.insecure_channel(server.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            stub = reward_pb2_grpc.RewardServiceStub(channel)

            def status() -> int:
                return health.Check(health_pb2.HealthCheckRequest(service=model_health_name("classifier"))).status

            server.loop.call_soon_threadsafe(break_once, batcher)
            with pytest.raises(grpc.RpcError):
                stub.Score(pb.ScoreRequest(items=[pb.Item(text="hi")]), timeout=30)
            assert asked.wait(30)
            assert status() == NOT_SERVING and not batcher.alive
            server.loop.call_soon_threadsafe(restart)
            watch = health.Watch(health_pb2.HealthCheckRequest(service=model_health_name("classifier")), timeout=30)
            assert SERVING in (response.status for response in watch)
            assert len(stub.Score(pb.ScoreRequest(items=[pb.Item(text="hi")]), timeout=30).scores) == 1
    finally:
        server.stop()
