"""Overload that real clients ride out: a burst past the queue, answered 429/503 with Retry-After.

The model is slowed to 4 items per 0.1 s (40 items/s, as a heavier model on this CPU) and the
queue holds 16 items, so a burst of 56 one-item requests from OpenRLHF-style clients
(``/get_reward``, 5 tries, 1 s sleep), verl-style clients (``/classify``, exponential backoff,
4xx not retried) and the project's gRPC client (pushback honoured) overflows it at once. Each
retry wave finds the queue drained (16 items take 0.4 s) and gets at least 16 in, so the burst
clears in about 3 waves, within OpenRLHF's 5 x 1 s window: no request may be lost.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from rewardserve.service.client import AsyncRewardClient, RetryPolicy, RewardClient

from rewardserve.v1 import reward_pb2 as pb
from rewardserve.v1 import reward_pb2_grpc

from .conftest import ServerThread, make_config
from .rl_clients import openrlhf_post_request, verl_post_request

pytestmark = pytest.mark.e2e
QUEUE = 16


@pytest.fixture(scope="module")
def busy_server(bundles):
    s = ServerThread(make_config(bundles, names=("pairwise",), http_port=0, max_queue_items=QUEUE,
                                 max_items_per_request=QUEUE, max_batch_items=4, inference_workers=1,
                                 model_aliases={"/models/rm": "pairwise"}))
    batcher = s.server.servicer.registry.get("pairwise").batcher
    run, submit, depths = batcher.run_batch, batcher.submit, []

    def slow_run(items):
        time.sleep(0.1)  # a heavier model: 40 items/s at most
        return run(items)

    def watched_submit(items, deadline=float("inf")):
        futures = submit(items, deadline)
        depths.append(batcher.depth)  # the queue only grows here
        return futures

    batcher.run_batch, batcher.submit = slow_run, watched_submit
    s.depths = depths
    yield s
    s.stop()


def test_burst_loses_no_request_and_refusals_say_when_to_retry(busy_server):
    base = f"http://127.0.0.1:{busy_server.server.http_port}"
    texts = [f"\n\nHuman: question {i}\n\nAssistant: answer {i} " + "word " * (i % 7) for i in range(56)]
    orl_seen, verl_seen = [], []

    async def burst():
        orl = [openrlhf_post_request(f"{base}/get_reward", {"query": [t], "prompts": [""], "labels": [""]},
                                     seen=orl_seen) for t in texts[:24]]
        verl = [verl_post_request(base, {"model": "/models/rm", "input": t, "use_activation": False}, "classify",
                                  seen=verl_seen) for t in texts[24:48]]
        async with AsyncRewardClient(busy_server.target, retry=RetryPolicy(attempts=10)) as client:
            grpc_calls = [client.score([t]) for t in texts[48:]]
            return await asyncio.gather(*orl, *verl, *grpc_calls)

    results = asyncio.run(burst())
    rewards = ([r["rewards"][0] for r in results[:24]] + [r["data"][-1]["probs"][-1] for r in results[24:48]]
               + [r.scores[0].reward for r in results[48:]])
    with RewardClient(busy_server.target) as client:
        expected = [client.score([t]).scores[0].reward for t in texts]
    assert rewards == pytest.approx(expected, abs=1e-5)  # every request answered, with its own score
    assert orl_seen and verl_seen, "the burst did not overflow the queue"
    assert {status for status, _ in orl_seen} == {429}  # /get_reward: 429 (OpenRLHF retries any error)
    assert {status for status, _ in verl_seen} == {503}  # /classify: 503, which verl retries
    assert all(ra is not None and int(ra) >= 1 for _, ra in orl_seen + verl_seen)
    assert max(busy_server.depths) <= QUEUE


async def test_grpc_queue_full_carries_pushback_and_the_client_waits_for_it(busy_server):
    async with grpc.aio.insecure_channel(busy_server.target) as channel:
        stub = reward_pb2_grpc.RewardServiceStub(channel)
        fill = asyncio.ensure_future(stub.Score(pb.ScoreRequest(items=[pb.Item(text=f"x {i}") for i in range(QUEUE)]),
                                                timeout=30))
        batcher = busy_server.server.servicer.registry.get("pairwise").batcher
        while batcher.depth < QUEUE - 4 and not fill.done():  # the first batch of 4 may already run
            await asyncio.sleep(0.005)
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub.Score(pb.ScoreRequest(items=[pb.Item(text=f"y {i}") for i in range(8)]), timeout=30)
        assert e.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        pushback = dict(e.value.trailing_metadata())["grpc-retry-pushback-ms"]
        assert int(pushback) >= 1
        await fill
    async with AsyncRewardClient(busy_server.target, retry=RetryPolicy(attempts=3)) as client:
        big = [asyncio.ensure_future(client.score([f"z {i}" for i in range(QUEUE)])) for _ in range(3)]
        assert [len(r.scores) for r in await asyncio.gather(*big)] == [QUEUE] * 3  # 2 were pushed back, then ran
