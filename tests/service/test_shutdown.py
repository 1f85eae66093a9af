"""Stopping: accepted calls finish, a health Watch does not hold the grace period, calls are tallied."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rewardserve.v1 import reward_pb2 as pb
from rewardserve.v1 import reward_pb2_grpc

from .conftest import ServerThread, make_config

pytestmark = pytest.mark.e2e


async def test_stop_answers_accepted_calls_then_returns_without_waiting_out_the_grace(bundles, caplog):
    # Items wait 400 ms for their batch, so the call is in flight when stop() begins.
    server = ServerThread(make_config(bundles, names=("classifier",), max_wait_ms=400.0, grace_period_s=10.0))
    statuses = []
    async with grpc.aio.insecure_channel(server.target) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())

        async def follow():
            with pytest.raises(grpc.aio.AioRpcError):  # the stream ends when the server stops
                async for reply in watch:
                    statuses.append(reply.status)

        follower = asyncio.ensure_future(follow())
        call = reward_pb2_grpc.RewardServiceStub(channel).Score(pb.ScoreRequest(items=[pb.Item(text="in flight")]),
                                                                timeout=20)
        await asyncio.sleep(0.1)
        start = time.monotonic()
        with caplog.at_level(logging.INFO, logger="rewardserve.service.edge.server"):
            await asyncio.to_thread(server.call, server.server.stop())  # grace_period_s = 10
        stopped_s = time.monotonic() - start
        assert len((await call).scores) == 1  # accepted before the stop: answered
        await follower
    server.loop.call_soon_threadsafe(server.loop.stop)
    assert stopped_s < 3.0, stopped_s  # not the 10 s grace, although the Watch stream was open
    assert statuses[0] == health_pb2.HealthCheckResponse.SERVING
    assert statuses[-1] == health_pb2.HealthCheckResponse.NOT_SERVING
    summary = next(r.getMessage() for r in caplog.records if "calls by method and code" in r.getMessage())
    assert json.loads(summary.split("code: ", 1)[1])["Score"] == {"OK": 1}


async def test_full_queue_rejects_before_tokenizing(bundles):
    server = ServerThread(make_config(bundles, names=("classifier",), max_wait_ms=2000.0, max_queue_items=4,
                                      max_items_per_request=4))
    model = server.server.servicer.registry.get("")
    prepared = []
    original = model.prepare
    model.prepare = lambda items, *a, **k: prepared.append(len(items)) or original(items, *a, **k)
    try:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = reward_pb2_grpc.RewardServiceStub(channel)
            first = stub.Score(pb.ScoreRequest(items=[pb.Item(text=f"t{i}") for i in range(4)]), timeout=20)
            while model.batcher.depth < 4:
                await asyncio.sleep(0.01)
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stub.Score(pb.ScoreRequest(items=[pb.Item(text="one more")]), timeout=20)
            assert e.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and "queue full" in e.value.details()
            assert prepared == [4]  # the rejected request was never tokenized
            assert len((await first).scores) == 4
    finally:
        server.stop()
