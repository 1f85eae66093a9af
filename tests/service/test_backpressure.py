"""Queue limits, deadlines and cancellation against a real server whose batches wait long."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from rewardserve.v1 import reward_pb2 as pb
from rewardserve.v1 import reward_pb2_grpc

from .conftest import ServerThread, make_config

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def slow_server(bundles):
    """Items wait up to 1 s for a batch; 8 items fill the queue; requests without deadline get 0.3 s."""
    s = ServerThread(make_config(bundles, names=("classifier",), max_wait_ms=1000.0, max_batch_items=64,
                                 max_queue_items=8, max_items_per_request=8, request_timeout_s=0.3))
    yield s
    s.stop()


def sample(server: ServerThread, name: str, **labels) -> float:
    return server.server.metrics.registry.get_sample_value(name, labels) or 0.0


async def wait_until(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def request(n: int) -> pb.ScoreRequest:
    return pb.ScoreRequest(items=[pb.Item(text=f"item {i}") for i in range(n)])


async def test_full_queue_is_resource_exhausted(slow_server):
    batcher = slow_server.server.servicer.registry.get("").batcher
    async with grpc.aio.insecure_channel(slow_server.target) as channel:
        stub = reward_pb2_grpc.RewardServiceStub(channel)
        first = asyncio.ensure_future(stub.Score(request(8), timeout=10))
        await wait_until(lambda: batcher.depth == 8)
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub.Score(request(1), timeout=10)
        assert e.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and "queue full" in e.value.details()
        assert len((await first).scores) == 8  # the accepted request still completes


async def test_expired_items_are_not_run(slow_server):
    items_before = sample(slow_server, "rewardserve_items_total", model="classifier")
    dropped = lambda: sum(sample(slow_server, "rewardserve_items_dropped_total", model="classifier", reason=r)  # noqa: E731
                          for r in ("expired", "cancelled"))
    dropped_before = dropped()
    async with grpc.aio.insecure_channel(slow_server.target) as channel:
        stub = reward_pb2_grpc.RewardServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub.Score(request(2))  # no client deadline: the server's 0.3 s applies
        assert e.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub.Score(request(1), timeout=0.2)  # the client's own deadline
        assert e.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    await wait_until(lambda: dropped() - dropped_before == 3)
    assert sample(slow_server, "rewardserve_items_total", model="classifier") == items_before
    assert sample(slow_server, "rewardserve_requests_total", method="Score", model="classifier",
                  code="DEADLINE_EXCEEDED") >= 1


async def test_cancelled_requests_are_dropped(slow_server):
    batcher = slow_server.server.servicer.registry.get("").batcher
    items_before = sample(slow_server, "rewardserve_items_total", model="classifier")
    cancelled_before = sample(slow_server, "rewardserve_items_dropped_total", model="classifier", reason="cancelled")
    async with grpc.aio.insecure_channel(slow_server.target) as channel:
        stub = reward_pb2_grpc.RewardServiceStub(channel)
        call = stub.Score(request(3), timeout=10)
        await wait_until(lambda: batcher.depth == 3)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    await wait_until(lambda: batcher.depth == 0)
    assert sample(slow_server, "rewardserve_items_dropped_total", model="classifier", reason="cancelled") == \
        cancelled_before + 3
    assert sample(slow_server, "rewardserve_items_total", model="classifier") == items_before
