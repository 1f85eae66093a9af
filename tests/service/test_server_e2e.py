"""End-to-end: a real server on a free port, every RPC, every status code, health, reflection, metrics."""

from __future__ import annotations

import threading
import time
import urllib.request

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from rewardserve.service.client.client import (
    AsyncRewardClient,
    RetryPolicy,
    RewardClient,
    RewardServiceError,
    score_request,
)
from rewardserve.service.edge.server import SERVICE_NAME
from rewardserve.service.engine.models import ModelRegistry

from rewardserve.formatting import Message, render_chat
from rewardserve.v1 import reward_pb2 as pb
from rewardserve.v1 import reward_pb2_grpc

from .conftest import NORMALIZATION, ServerThread, make_config

pytestmark = pytest.mark.e2e

LONG = "the quick brown fox jumps over the lazy dog " * 20  # far over max_length 64


@pytest.fixture(scope="module")
def client(server):
    with RewardClient(server.target, timeout_s=20) as c:
        yield c


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.target) as channel:
        yield reward_pb2_grpc.RewardServiceStub(channel)


def code_of(fn, *args, **kwargs) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as e:
        fn(*args, **kwargs)
    return e.value.code(), e.value.details()


def sigmoid(x):
    return 1 / (1 + np.exp(-np.asarray(x, np.float64)))


def test_list_and_get_models(client):
    listing = client.list_models()
    assert listing.default == "pairwise"
    assert [m.name for m in listing.models] == ["pairwise", "classifier", "gpt2"]
    pair, clf, gpt2 = listing.models
    assert (pair.kind, pair.labels, pair.reward_index, pair.max_length) == ("pairwise", ("reward",), 0, 64)
    assert pair.normalization == pytest.approx((NORMALIZATION.mean, NORMALIZATION.std))
    assert (clf.kind, clf.labels, clf.reward_label, clf.reward_index) == ("classifier", ("toxic", "non_toxic"),
                                                                        "non_toxic", 1)
    assert clf.normalization is None and gpt2.model_type == "gpt2"
    for m in listing.models:
        assert (m.precision, m.execution_provider, m.parity_passed) == ("fp32", "CPUExecutionProvider", True)
    assert client.get_model("") == pair and client.get_model("classifier") == clf
    with pytest.raises(RewardServiceError) as e:
        client.get_model("nope")
    assert e.value.code is grpc.StatusCode.NOT_FOUND and "'nope' not found" in e.value.details


def test_score_text_pair_and_chat_forms(client):
    messages = [{"role": "user", "content": "How do I bake bread?"}, {"role": "assistant", "content": "Knead it."}]
    chat_text = render_chat(client_spec_template(client), [Message(**m) for m in messages])
    r = client.score(["Hi there!Hello.", ("Hi there!", "Hello."), {"messages": messages}, chat_text])
    assert r.model == "pairwise" and len(r.scores) == 4
    text, pair, chat, chat_as_text = r.scores
    assert pair.logits == pytest.approx(text.logits, abs=1e-6)  # "{prompt}{response}" template
    assert chat.logits == pytest.approx(chat_as_text.logits, abs=1e-6)
    for s in r.scores:
        assert len(s.logits) == 1 and s.reward == pytest.approx(s.logits[0])
        assert s.probabilities[0] == pytest.approx(sigmoid(s.logits[0]), abs=1e-6)
        assert s.num_tokens > 2 and not s.truncated


def client_spec_template(client) -> str:
    from rewardserve.bundle import HH_CHAT_TEMPLATE

    return HH_CHAT_TEMPLATE  # tiny bundles keep the default (HH) chat template


def test_classifier_probabilities_and_reward(client):
    r = client.score(["you are wonderful", "you are awful"], model="classifier")
    for s in r.scores:
        assert len(s.logits) == 2 and sum(s.probabilities) == pytest.approx(1, abs=1e-6)
        assert s.reward == pytest.approx(s.logits[1])
        expected = np.exp(s.logits) / np.exp(s.logits).sum()
        assert s.probabilities == pytest.approx(expected, abs=1e-6)


def test_normalized_reward_uses_stored_statistics(client):
    raw = client.score(["some text"]).scores[0]
    norm = client.score(["some text"], normalize=True).scores[0]
    assert norm.reward == pytest.approx((raw.reward - NORMALIZATION.mean) / NORMALIZATION.std, abs=1e-5)
    assert norm.logits == raw.logits


def test_truncation_sides_and_error(client):
    left, right = (client.score([LONG + "END"], truncation=t).scores[0] for t in ("left", "right"))
    assert left.truncated and right.truncated and left.num_tokens == right.num_tokens == 64
    assert left.logits != right.logits
    with pytest.raises(RewardServiceError) as e:
        client.score(["short", LONG], truncation="error")
    assert e.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details.startswith("items[1]: ") and "max_length is 64" in e.value.details


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (pb.ScoreRequest(), "items: empty"),
        (pb.ScoreRequest(items=[pb.Item(text="a")] * 3 + [pb.Item(text="")]), "items[3].text: empty"),
        (pb.ScoreRequest(items=[pb.Item(text="a"), pb.Item()]), "items[1]: no input set"),
        (pb.ScoreRequest(items=[pb.Item(pair=pb.PromptResponse(prompt="p"))]), "items[0].pair.response: empty"),
        (pb.ScoreRequest(items=[pb.Item(conversation=pb.Conversation(
            messages=[pb.ChatMessage(role="robot", content="x")]))]), "items[0].conversation.messages[0].role"),
        (pb.ScoreRequest(items=[pb.Item(text="a")] * 1025), "items: 1025 items, at most 1024"),
        (pb.ScoreRequest(items=[pb.Item(text="a")], options=pb.ScoreOptions(truncation=7)),
         "options.truncation: unknown value 7"),
    ],
)
def test_invalid_argument_names_field_and_index(stub, request_, message):
    code, details = code_of(stub.Score, request_)
    assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith(message)


def test_unknown_option_field_is_invalid(stub):
    options = pb.ScoreOptions()
    options.MergeFromString(b"\x48\x05")  # field 9, not in the schema
    code, details = code_of(stub.Score, pb.ScoreRequest(items=[pb.Item(text="a")], options=options))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith("options: unknown option")


def test_unknown_model_is_not_found(stub):
    request = pb.ScoreRequest(items=[pb.Item(text="a")], options=pb.ScoreOptions(model="nope"))
    assert code_of(stub.Score, request)[0] is grpc.StatusCode.NOT_FOUND


def test_compare_matches_score(client):
    pairs = [("Sure, here is how.", "No."), ("I can't help.", "Absolutely!")]
    cmp = client.compare("Can you help me?", pairs, model="gpt2")
    scores = client.score([("Can you help me?", r) for p in pairs for r in p], model="gpt2").scores
    assert cmp.model == "gpt2" and len(cmp.comparisons) == 2
    for i, c in enumerate(cmp.comparisons):
        a, b = scores[2 * i].reward, scores[2 * i + 1].reward
        assert (c.reward_a, c.reward_b) == pytest.approx((a, b), abs=1e-5)
        assert c.prob_a_preferred == pytest.approx(sigmoid(a - b), abs=1e-5)
    with pytest.raises(RewardServiceError) as e:
        client.compare("p", [("a", "")])
    assert e.value.code is grpc.StatusCode.INVALID_ARGUMENT and e.value.details == "pairs[0].response_b: empty"


async def test_score_stream_answers_every_request(server, client):
    requests = [score_request([f"text number {i}", "x" * i + "!"], request_id=f"r{i}",
                              model="classifier" if i % 2 else "") for i in range(6)]
    async with AsyncRewardClient(server.target) as ac:
        results = {r.request_id: r async for r in ac.score_stream(requests)}
    assert sorted(results) == [f"r{i}" for i in range(6)]
    for i, req in enumerate(requests):
        solo = client.score(list(req.items), model=req.options.model)
        assert results[f"r{i}"].model == solo.model
        for got, want in zip(results[f"r{i}"].scores, solo.scores, strict=True):
            assert got.logits == pytest.approx(want.logits, abs=1e-5)


async def test_score_stream_error_ends_the_stream(server):
    async with AsyncRewardClient(server.target) as ac:
        with pytest.raises(RewardServiceError) as e:
            _ = [r async for r in ac.score_stream([score_request(["ok"]), score_request(["ok"], model="nope")])]
    assert e.value.code is grpc.StatusCode.NOT_FOUND


def test_health_and_reflection(server):
    with grpc.insecure_channel(server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", SERVICE_NAME):
            assert health.Check(health_pb2.HealthCheckRequest(service=name)).status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(channel)
        [answer] = refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for s in answer.list_services_response.service}
    assert {SERVICE_NAME, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


def test_metrics_families_moved(server, client):
    client.score(["metrics please", "and another"], model="classifier")
    text = urllib.request.urlopen(server.metrics_url, timeout=5).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)

    def value(prefix: str) -> float:
        return sum(v for k, v in values.items() if k.startswith(prefix))

    assert value('rewardserve_requests_total{code="OK",method="Score",model="classifier"}') >= 1
    assert value('rewardserve_items_total{model="classifier"}') >= 2
    assert value('rewardserve_tokens_total{model="classifier"}') >= 4
    for family in ("rewardserve_request_latency_seconds_count", "rewardserve_queue_wait_seconds_count",
                   "rewardserve_inference_seconds_count", "rewardserve_batch_size_count",
                   "rewardserve_batch_padded_tokens_count", "rewardserve_padding_efficiency_count"):
        assert value(family) >= 1, family
    for gauge in ("rewardserve_queue_depth{", "rewardserve_in_flight_requests{", "rewardserve_model_info{"):
        assert any(k.startswith(gauge) for k in values), gauge
    [info] = [k for k in values if k.startswith("rewardserve_model_info{") and 'model="gpt2"' in k]
    assert 'precision="fp32"' in info and 'provider="CPUExecutionProvider"' in info


# ---------------------------------------------------------------- loading: UNAVAILABLE, then SERVING
def test_unavailable_while_loading_then_serving_and_client_retries(bundles):
    release = threading.Event()

    def slow_loader(config, metrics):
        release.wait(30)
        return ModelRegistry.load(config, metrics)

    s = ServerThread(make_config(bundles, names=("classifier",)), wait_ready=False, loader=slow_loader)
    try:
        with grpc.insecure_channel(s.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            status = health.Check(health_pb2.HealthCheckRequest(service="")).status
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING
            stub = reward_pb2_grpc.RewardServiceStub(channel)
            code, details = code_of(stub.Score, pb.ScoreRequest(items=[pb.Item(text="a")]))
            assert code is grpc.StatusCode.UNAVAILABLE and "loading" in details
            result = {}
            retrying = RewardClient(s.target, retry=RetryPolicy(attempts=100, max_backoff_s=0.1))
            worker = threading.Thread(target=lambda: result.update(r=retrying.score(["hello"])))
            worker.start()
            time.sleep(0.2)  # let the client see UNAVAILABLE at least once
            release.set()
            worker.join(30)
            retrying.close()
            assert result["r"].scores[0].num_tokens > 0
            s.call(s.server.wait_ready())
            status = health.Check(health_pb2.HealthCheckRequest(service="")).status
            assert status == health_pb2.HealthCheckResponse.SERVING
    finally:
        release.set()
        s.stop()
