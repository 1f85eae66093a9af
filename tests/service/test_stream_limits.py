"""ScoreStream under load: a bounded number of messages in flight per stream, each counted against
max_concurrent_requests, and metric labels that stay bounded while the models load."""

from __future__ import annotations

import threading

import grpc
import pytest

from rewardserve.v1 import reward_pb2 as pb
from rewardserve.v1 import reward_pb2_grpc

from .conftest import ServerThread, make_config

pytestmark = pytest.mark.e2e

BOUND = 4


def count_concurrent_scoring(servicer) -> dict:
    """Wrap the servicer's per-message scoring to record the most messages scored at once."""
    stats, score = {"active": 0, "peak": 0}, servicer._score

    async def counting(request, context):
        stats["active"] += 1
        stats["peak"] = max(stats["peak"], stats["active"])
        try:
            return await score(request, context)
        finally:
            stats["active"] -= 1

    servicer._score = counting
    return stats


def test_a_stream_that_writes_without_reading_holds_a_bounded_number_of_messages(bundles):
    # Without flow control every message read starts its own task at once: the peak would be
    # about as many as the client wrote before the first batch finished.
    server = ServerThread(make_config(bundles, names=("classifier",), max_stream_in_flight=BOUND,
                                      max_wait_ms=20.0, max_batch_items=64, inference_workers=1))
    stats = count_concurrent_scoring(server.server.servicer)
    written = threading.Event()
    total = 300

    def requests():
        for i in range(total):
            yield pb.ScoreRequest(items=[pb.Item(text=f"message {i}")], request_id=str(i))
        written.set()

    try:
        with grpc.insecure_channel(server.target) as channel:
            call = reward_pb2_grpc.RewardServiceStub(channel).ScoreStream(requests(), timeout=60)
            assert written.wait(30)  # the client wrote everything before reading a single response
            ids = [r.request_id for r in call]
    finally:
        server.stop()
    assert sorted(ids, key=int) == [str(i) for i in range(total)]
    assert 1 <= stats["peak"] <= BOUND


def test_stream_messages_count_against_max_concurrent_requests(bundles):
    # The stream is one call and each message in flight one more: with a limit of 3, the third
    # message in flight ends the stream with RESOURCE_EXHAUSTED (before: the stream counted once).
    server = ServerThread(make_config(bundles, names=("classifier",), max_concurrent_requests=3,
                                      max_stream_in_flight=8, max_wait_ms=2000.0, max_batch_items=64))
    try:
        with grpc.insecure_channel(server.target) as channel:
            call = reward_pb2_grpc.RewardServiceStub(channel).ScoreStream(
                iter([pb.ScoreRequest(items=[pb.Item(text=f"m{i}")]) for i in range(8)]), timeout=30)
            with pytest.raises(grpc.RpcError) as e:
                list(call)
            assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_concurrent_requests" in e.value.details()
            # Every count was given back: a unary call is admitted again.
            stub = reward_pb2_grpc.RewardServiceStub(channel)
            assert len(stub.Score(pb.ScoreRequest(items=[pb.Item(text="after")]), timeout=30).scores) == 1
    finally:
        server.stop()
