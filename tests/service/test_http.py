"""The OpenRLHF endpoint: requests shaped as OpenRLHF sends them, batched with gRPC, errors by status.

OpenRLHF's ``remote_rm_fn`` posts ``{"query": [...], "prompts": [...], "labels": [...]}`` with
``requests`` (one sample per request, many at once from Ray workers) and reads ``rewards``;
the tests do the same from a thread pool.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from rewardserve.service.client import RewardClient
from rewardserve.service.engine.models import ModelRegistry

from .conftest import ServerThread, make_config

pytestmark = pytest.mark.e2e

PROMPTS = ["\n\nHuman: how do I fix a flat tyre?", "\n\nHuman: tell me about whales", "\n\nHuman: write a poem"]
RESPONSES = ["\n\nAssistant: patch the tube and pump it up", "\n\nAssistant: no", "\n\nAssistant: whales sing " * 5,
             "\n\nAssistant: you are an idiot", "\n\nAssistant: roses are red, violets are blue"]
SAMPLES = [(p, p + r + f" ({i})") for i, (p, r) in enumerate((p, r) for p in PROMPTS for r in RESPONSES)] * 2


def post_like_openrlhf(url: str, queries, prompts, labels) -> requests.Response:
    """What OpenRLHF's request_api_wrapper sends (minus its retries, so errors stay visible)."""
    return requests.post(url=url, json={"query": queries, "prompts": prompts, "labels": labels},
                         headers={"Content-Type": "application/json"}, timeout=60)


def sample(server: ServerThread, name: str, **labels) -> float:
    return server.server.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture(scope="module")
def http_server(bundles):
    """HTTP on a free port, scoring ``classifier`` by default, with one composite."""
    s = ServerThread(make_config(bundles, names=("pairwise", "classifier"), http_port=0, http_model="classifier",
                                 composites={"safe": "pairwise - 0.5*classifier:toxic"}, max_wait_ms=20.0))
    yield s
    s.stop()


def url(server: ServerThread, path: str = "/get_reward") -> str:
    return f"http://127.0.0.1:{server.server.http_port}{path}"


def test_concurrent_single_sample_requests_are_batched_and_match_grpc_solo_scores(http_server):
    batches_before = sample(http_server, "rewardserve_batch_size_count", model="classifier")
    ok_before = sample(http_server, "rewardserve_requests_total", method="POST /get_reward", model="classifier",
                       code="OK")
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda s: post_like_openrlhf(url(http_server), [s[1]], [s[0]], [""]), SAMPLES))
    batches = sample(http_server, "rewardserve_batch_size_count", model="classifier") - batches_before
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    bodies = [r.json() for r in responses]
    # Requests met in the batcher: fewer batches than the single-item requests that fed them.
    assert batches < len(SAMPLES)
    assert sample(http_server, "rewardserve_requests_total", method="POST /get_reward", model="classifier",
                  code="OK") - ok_before == len(SAMPLES)
    with RewardClient(http_server.target) as client:
        for (_, text), body in zip(SAMPLES, bodies, strict=True):
            solo = client.score([text], model="classifier").scores[0]  # gRPC, alone: a batch of one
            assert body["rewards"] == pytest.approx([solo.reward], abs=1e-5)
            assert body["scores"] == body["rewards"]
            assert body["extra_logs"] == {"num_tokens": [solo.num_tokens], "truncated": [float(solo.truncated)]}


def test_many_queries_in_order_model_and_normalize_parameters(http_server):
    texts = [t for _, t in SAMPLES[:6]]
    r = post_like_openrlhf(url(http_server) + "?model=pairwise&normalize=true", texts, [""] * 6, [""] * 6)
    assert r.status_code == 200, r.text
    with RewardClient(http_server.target) as client:
        expected = client.score(texts, model="pairwise", normalize=True)
    assert r.json()["rewards"] == pytest.approx([s.reward for s in expected.scores], abs=1e-5)


def test_composite_returns_the_total_and_each_part(http_server):
    texts = [t for _, t in SAMPLES[:4]]
    r = post_like_openrlhf(url(http_server) + "?model=safe", texts, [""] * 4, [""] * 4)
    assert r.status_code == 200, r.text
    body = r.json()
    with RewardClient(http_server.target) as client:
        hh = [s.reward for s in client.score(texts, model="pairwise").scores]
        toxic = [s.probabilities[0] for s in client.score(texts, model="classifier").scores]
    assert body["extra_logs"]["pairwise"] == pytest.approx(hh, abs=1e-5)
    assert body["extra_logs"]["classifier:toxic"] == pytest.approx(toxic, abs=1e-6)
    assert body["rewards"] == pytest.approx([h - 0.5 * t for h, t in zip(hh, toxic, strict=True)], abs=1e-5)


@pytest.mark.parametrize(
    ("body", "params", "status", "message"),
    [
        (b"{not json", "", 400, "body: not valid JSON"),
        (b"[1, 2]", "", 400, "body: expected a JSON object with 'query', got list"),
        (b'{"prompts": ["a"]}', "", 400, "body.query: missing"),
        (b'{"query": "one text"}', "", 400, "body.query: expected a list of strings, got one string"),
        (b'{"query": ["a", 3]}', "", 400, "body.query[1]: expected a string, got int"),
        (b'{"query": []}', "", 400, "body.query: empty"),
        (b'{"query": ["a", ""]}', "", 400, "body.query[1]: empty"),
        (b'{"query": ["a"]}', "?normalize=maybe", 400, "normalize: expected true or false, got 'maybe'"),
        (b'{"query": ["a"]}', "?model=nope", 404, "model 'nope' not found"),
        (b"\xff\xfe", "", 400, "body: not valid JSON"),
    ],
)
def test_bad_requests_get_a_status_and_a_message_naming_the_problem(http_server, body, params, status, message):
    r = requests.post(url(http_server) + params, data=body, headers={"Content-Type": "application/json"},
                      timeout=30)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_too_many_items_and_metrics_of_errors(http_server):
    before = sample(http_server, "rewardserve_requests_total", method="POST /get_reward", model="classifier",
                    code="INVALID_ARGUMENT")
    n = http_server.server.config.max_items_per_request + 1
    r = post_like_openrlhf(url(http_server), ["x"] * n, [""] * n, [""] * n)
    assert r.status_code == 400
    assert r.json()["error"] == f"body.query: {n} texts, at most {n - 1} per request (max_items_per_request)"
    assert r.json()["code"] == "INVALID_ARGUMENT"
    assert sample(http_server, "rewardserve_requests_total", method="POST /get_reward", model="classifier",
                  code="INVALID_ARGUMENT") == before + 1
    assert requests.get(url(http_server, "/health"), timeout=10).json() == {"status": "SERVING"}


def test_unavailable_while_loading_queue_full_and_draining(bundles):
    release = threading.Event()

    def slow_loader(config, metrics):
        release.wait(30)
        return ModelRegistry.load(config, metrics)

    # Batches wait 1 s for more items and the queue holds 4: a 4-query request fills it.
    config = make_config(bundles, names=("classifier",), http_port=0, max_wait_ms=1000.0, max_queue_items=4,
                         max_items_per_request=4)
    s = ServerThread(config, wait_ready=False, loader=slow_loader)
    stopped = False
    try:
        health = requests.get(url(s, "/health"), timeout=10)
        assert health.status_code == 503 and "loading" in health.json()["error"]
        r = post_like_openrlhf(url(s), ["hello"], [""], [""])
        assert r.status_code == 503 and r.json()["code"] == "UNAVAILABLE"
        release.set()
        s.call(s.server.wait_ready())
        assert requests.get(url(s, "/health"), timeout=10).status_code == 200
        batcher = s.server.servicer.registry.get("").batcher
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(post_like_openrlhf, url(s), ["a", "b", "c", "d"], [""] * 4, [""] * 4)
            while batcher.depth < 4 and not first.done():
                threading.Event().wait(0.01)
            full = post_like_openrlhf(url(s), ["e"], [""], [""])
            assert full.status_code == 429 and "queue full" in full.json()["error"]
            assert first.result().status_code == 200 and len(first.result().json()["rewards"]) == 4
            # Accepted before the stop (it waits in the queue): it still gets its rewards.
            draining = pool.submit(post_like_openrlhf, url(s), ["drain me"], [""], [""])
            while batcher.depth < 1 and not draining.done():
                threading.Event().wait(0.01)
            s.stop()
            stopped = True
            assert draining.result().status_code == 200 and len(draining.result().json()["rewards"]) == 1
    finally:
        release.set()
        if not stopped:
            s.stop()
