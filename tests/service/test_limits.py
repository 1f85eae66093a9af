"""Request limits, each with its own clear error, and model names that look like paths.

Limits: bytes per request (gRPC's own RESOURCE_EXHAUSTED), items per request and characters per
item (INVALID_ARGUMENT naming the item and the setting), calls in progress (RESOURCE_EXHAUSTED
naming max_concurrent_requests; health checks exempt). A request can name a served model only:
a path-like name is NOT_FOUND and nothing on disk is touched.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import urllib.error
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rewardserve.service.engine.models import ScoringModel

from rewardserve.kserve import grpc_predict_v2_pb2 as kserve_pb
from rewardserve.kserve import grpc_predict_v2_pb2_grpc as kserve_grpc
from rewardserve.v1 import reward_pb2 as pb
from rewardserve.v1 import reward_pb2_grpc

from .conftest import ServerThread, make_config

pytestmark = pytest.mark.e2e

MAX_BYTES, MAX_CHARS, MAX_ITEMS, MAX_CALLS = 4096, 100, 4, 2


@pytest.fixture(scope="module")
def limited(bundles):
    s = ServerThread(make_config(bundles, names=("pairwise",), http_port=0, max_request_bytes=MAX_BYTES,
                                 max_text_chars=MAX_CHARS, max_items_per_request=MAX_ITEMS,
                                 max_concurrent_requests=MAX_CALLS))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def channel(limited):
    with grpc.insecure_channel(limited.target) as channel:
        yield channel


@pytest.fixture(scope="module")
def stub(channel):
    return reward_pb2_grpc.RewardServiceStub(channel)


def texts(*items: str) -> pb.ScoreRequest:
    return pb.ScoreRequest(items=[pb.Item(text=t) for t in items])


def status(fn, request) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as e:
        fn(request, timeout=10)
    return e.value.code(), e.value.details()


def test_request_bytes_limit(stub):
    assert len(stub.Score(texts("a" * MAX_CHARS), timeout=10).scores) == 1
    request = texts(*["b" * 90] * (MAX_BYTES // 90))  # ~45 items of 90 chars: over 4096 bytes
    assert request.ByteSize() > MAX_BYTES
    code, details = status(stub.Score, request)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"Received message larger than max ({request.ByteSize()} vs. {MAX_BYTES})" in details


def test_items_per_request_limit(stub):
    code, details = status(stub.Score, texts(*["x"] * (MAX_ITEMS + 1)))
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, f"items: 5 items, at most {MAX_ITEMS} per request")


@pytest.mark.parametrize("item, what", [
    (pb.Item(text="c" * (MAX_CHARS + 1)), "text"),
    (pb.Item(pair=pb.PromptResponse(prompt="p" * 60, response="r" * 41)), "prompt + response"),
    (pb.Item(conversation=pb.Conversation(messages=[pb.ChatMessage(role="user", content="u" * 50),
                                                    pb.ChatMessage(role="assistant", content="a" * 51)])),
     "all message contents"),
])
def test_characters_per_item_limit(stub, item, what):
    code, details = status(stub.Score, pb.ScoreRequest(items=[pb.Item(text="fine"), item]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == f"items[1]: 101 characters ({what}), at most {MAX_CHARS} per item (max_text_chars)"


def test_characters_per_item_limit_in_compare(stub):
    request = pb.CompareRequest(prompt="p" * 50, pairs=[pb.ResponsePair(response_a="a", response_b="b" * 51)])
    code, details = status(stub.Compare, request)
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "pairs[0].response_b: 101 characters "
                               f"(prompt + response), at most {MAX_CHARS} per item (max_text_chars)")


def post_get_reward(port: int, texts: tuple[str, ...] = ("hello",)) -> tuple[int, dict]:
    body = json.dumps({"query": list(texts), "prompts": [""] * len(texts), "labels": [""] * len(texts)}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/get_reward", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_http_limits(limited):
    assert post_get_reward(limited.server.http_port, ("c" * MAX_CHARS,))[0] == 200
    status, body = post_get_reward(limited.server.http_port, ("ok", "c" * (MAX_CHARS + 1)))
    assert (status, body["error"]) == (400, "body.query[1]: 101 characters (text), at most 100 per item "
                                            "(max_text_chars)")
    status, body = post_get_reward(limited.server.http_port, ("b" * (MAX_BYTES + 1),))
    assert (status, body["error"]) == (400, f"body: larger than max_request_bytes ({MAX_BYTES})")


async def wait_for(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_concurrent_calls_limit(limited):
    guard = limited.server.security.guard
    release = asyncio.Event()

    async def no_requests_until_released():
        await release.wait()
        return
        yield  # an async generator that sends nothing

    async with grpc.aio.insecure_channel(limited.target) as channel:
        stub = reward_pb2_grpc.RewardServiceStub(channel)
        streams = [stub.ScoreStream(no_requests_until_released(), timeout=30) for _ in range(MAX_CALLS)]
        await wait_for(lambda: guard.limit.active == MAX_CALLS)  # both streams admitted and held open
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub.Score(texts("one too many"), timeout=10)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert e.value.details() == (f"server busy: {MAX_CALLS} requests in progress, at most {MAX_CALLS} "
                                     "(max_concurrent_requests); retry later or on another replica")
        # One limit for every protocol: HTTP gets 429 with the same message.
        status, body = await asyncio.to_thread(post_get_reward, limited.server.http_port)
        assert (status, body["error"]) == (429, e.value.details())
        health = health_pb2_grpc.HealthStub(channel)  # probes still answer at the limit
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        release.set()
        for call in streams:
            assert [r async for r in call] == []
        await wait_for(lambda: guard.limit.active == 0)  # slots are given back
        assert len((await stub.Score(texts("room again"), timeout=10)).scores) == 1
        assert (await asyncio.to_thread(post_get_reward, limited.server.http_port))[0] == 200


class FileAccess:
    """Records file-system audit events (open, listdir, scandir...) that mention given names."""

    EVENTS = ("open", "os.", "shutil.", "glob.", "pathlib.")

    def __init__(self):
        self.names: tuple[str, ...] = ()
        self.seen: list[tuple[str, tuple]] = []
        sys.addaudithook(self._hook)  # cannot be removed: it does nothing while names is empty

    def _hook(self, event: str, args: tuple) -> None:
        if self.names and event.startswith(self.EVENTS):
            for a in args:
                if isinstance(a, (str, bytes, os.PathLike)) and any(n in os.fsdecode(a) for n in self.names):
                    self.seen.append((event, args))


@pytest.fixture(scope="module")
def file_access() -> FileAccess:
    return FileAccess()


def test_model_names_cannot_name_files(limited, bundles, channel, stub, file_access, monkeypatch):
    kserve, not_found = kserve_grpc.GRPCInferenceServiceStub(channel), grpc.StatusCode.NOT_FOUND
    loads = []
    monkeypatch.setattr(ScoringModel, "load", classmethod(lambda cls, *a, **k: loads.append(a)))
    bundle_dir = str(bundles["classifier"])  # a real, loadable bundle the server does not serve
    names = ["../../etc", "/tmp/x", bundle_dir, f"{bundles['pairwise']}/..", "pairwise/../classifier"]
    file_access.names = ("/etc", "/tmp/x", bundle_dir, "classifier")
    try:
        for name in names:
            request = texts("hello")
            request.options.model = name
            code, details = status(stub.Score, request)
            assert (code, details) == (grpc.StatusCode.NOT_FOUND, f"model {name!r} not found (serving ['pairwise'])")
            assert status(stub.GetModel, pb.GetModelRequest(model=name))[0] == grpc.StatusCode.NOT_FOUND
            assert status(kserve.ModelMetadata, kserve_pb.ModelMetadataRequest(name=name))[0] == not_found
            text = kserve_pb.ModelInferRequest.InferInputTensor(
                name="text", datatype="BYTES", shape=[1], contents=kserve_pb.InferTensorContents(bytes_contents=[b"hi"]))
            infer = kserve_pb.ModelInferRequest(model_name=name, inputs=[text])
            assert status(kserve.ModelInfer, infer)[0] == not_found
        assert file_access.seen == [] and loads == []
        with open(os.path.join(bundle_dir, "reward.json")):  # the hook does see file access
            pass
        assert [event for event, _ in file_access.seen] == ["open"]
    finally:
        file_access.names = ()
    assert sorted(limited.server.servicer.registry.models) == ["pairwise"]
