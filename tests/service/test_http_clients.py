"""Each RL framework's reward client against a real server; every value equals the gRPC Score of the item.

verl (0.9.1) and OpenRLHF (0.11.2) need GPUs, ray and torch extras to import, so the request
code is rebuilt here exactly as their released source sends it:
- verl ``verl/experimental/reward_loop/reward_loop.py`` (``RewardLoopWorker._post_request`` and
  ``compute_score_disrm``): a new aiohttp session per request, ``raise_for_status``, one item,
  vLLM ``POST /classify {"model": <model_path>, "input": ..., "use_activation": false}`` read as
  ``data[-1].probs[-1]``, SGLang ``POST /v1/embeddings {"model", "input"}`` read as
  ``data[-1].embedding[-1]``;
- OpenRLHF ``openrlhf/utils/agent.py`` (``_fetch_rewards_via_http``): ``POST /get_reward
  {"query": [q], "prompts": [p], "labels": [l]}`` where ``q = hf_tokenizer.decode(prompt_ids +
  action_ids, skip_special_tokens=False)`` (the policy's EOS stays in the text).
"""

from __future__ import annotations

import asyncio

import pytest
from rewardserve.service.client import RewardClient
from tokenizers import Tokenizer

from rewardserve.activations import sigmoid, softmax

from .conftest import ServerThread, make_config
from .rl_clients import verl_post_request

pytestmark = pytest.mark.e2e

VERL_MODEL_PATH = "/mnt/models/Skywork-Reward-V2-Llama-3.1-8B"  # what verl sends: reward_model.model_path
TEXTS = ["\n\nHuman: how do I fix a flat tyre?\n\nAssistant: patch the tube and pump it up",
         "\n\nHuman: tell me about whales\n\nAssistant: no", "you are an idiot", "roses are red " * 4]
EOS = "<|endoftext|>"


@pytest.fixture(scope="module")
def http_server(bundles):
    s = ServerThread(make_config(bundles, names=("pairwise", "classifier", "gpt2"), http_port=0,
                                 composites={"safe": "pairwise - 0.5*classifier:toxic"},
                                 model_aliases={VERL_MODEL_PATH: "pairwise", "/mnt/models/tox": "classifier"},
                                 http_strip={"gpt2": [EOS]}, max_request_bytes=1 << 16))
    yield s
    s.stop()


def url(server: ServerThread, path: str) -> str:
    return f"http://127.0.0.1:{server.server.http_port}{path}"


def grpc_scores(server: ServerThread, texts, model: str):
    with RewardClient(server.target) as client:
        return client.score(texts, model=model).scores


def test_verl_vllm_classify_through_a_path_alias_equals_grpc(http_server):
    base = f"http://127.0.0.1:{http_server.server.http_port}"

    async def run():
        payloads = [{"model": VERL_MODEL_PATH, "input": t, "use_activation": False} for t in TEXTS]
        return await asyncio.gather(*(verl_post_request(base, p, "classify") for p in payloads))

    outputs = asyncio.run(run())
    expected = grpc_scores(http_server, TEXTS, "pairwise")
    for out, solo in zip(outputs, expected, strict=True):
        assert set(out) == {"id", "object", "created", "model", "data", "usage"} and out["object"] == "list"
        assert out["model"] == VERL_MODEL_PATH and out["id"].startswith("classify-")
        assert out["data"][-1]["probs"][-1] == pytest.approx(solo.reward, abs=1e-5)  # the raw logit
        assert out["data"][0]["num_classes"] == 1 and out["data"][0]["index"] == 0
        assert out["usage"]["prompt_tokens"] == solo.num_tokens == out["usage"]["total_tokens"]


def test_verl_sglang_embeddings_reward_last_equals_grpc(http_server):
    base = f"http://127.0.0.1:{http_server.server.http_port}"
    for model, name in ((VERL_MODEL_PATH, "pairwise"), ("/mnt/models/tox", "classifier")):
        async def run(model=model):
            return await asyncio.gather(*(verl_post_request(base, {"model": model, "input": t}, "v1/embeddings")
                                          for t in TEXTS))

        outputs = asyncio.run(run())
        for out, solo in zip(outputs, grpc_scores(http_server, TEXTS, name), strict=True):
            assert out["data"][-1]["embedding"][-1] == pytest.approx(solo.reward, abs=1e-5)
            assert out["data"][-1]["embedding"] == pytest.approx(list(solo.logits), abs=1e-5)


def test_v1_classify_activation_sigmoid_for_one_logit_softmax_otherwise(http_server):
    import requests

    r = requests.post(url(http_server, "/v1/classify"), json={"model": "pairwise", "input": TEXTS}, timeout=30)
    assert r.status_code == 200, r.text
    solo = grpc_scores(http_server, TEXTS, "pairwise")
    for d, s in zip(r.json()["data"], solo, strict=True):
        # one logit: sigmoid, never a softmax over one value (which is always 1.0)
        assert d["probs"] == pytest.approx([float(sigmoid(s.reward))], abs=1e-5) and d["probs"][0] != 1.0
        assert d["label"] == "reward" or d["num_classes"] == 1
    r = requests.post(url(http_server, "/v1/classify"), json={"model": "classifier", "input": TEXTS[0]}, timeout=30)
    [d] = r.json()["data"]
    [s] = grpc_scores(http_server, TEXTS[:1], "classifier")
    assert d["probs"] == pytest.approx(list(softmax([list(s.logits)])[0]), abs=1e-5) and d["num_classes"] == 2
    assert d["label"] == ["toxic", "non_toxic"][max(range(2), key=d["probs"].__getitem__)]


def test_classify_messages_equals_grpc_conversation(http_server):
    import requests

    chat = [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello, friend"}]
    r = requests.post(url(http_server, "/classify"), json={"model": "pairwise", "messages": chat,
                                                            "use_activation": False}, timeout=30)
    assert r.status_code == 200, r.text
    [solo] = grpc_scores(http_server, [chat], "pairwise")
    assert r.json()["data"][0]["probs"] == pytest.approx([solo.reward], abs=1e-5)


def test_tei_predict_single_pair_and_batch_equal_grpc(http_server):
    import requests

    post = lambda body: requests.post(url(http_server, "/predict?model=classifier"), json=body, timeout=30)  # noqa: E731
    [s] = grpc_scores(http_server, TEXTS[:1], "classifier")
    single = post({"inputs": TEXTS[0]}).json()
    assert single == sorted(single, key=lambda p: -p["score"])
    assert {p["label"]: p["score"] for p in single} == pytest.approx(
        dict(zip(["toxic", "non_toxic"], softmax([list(s.logits)])[0], strict=True)), abs=1e-5)
    raw = post({"inputs": TEXTS[0], "raw_scores": True}).json()
    assert {p["label"]: p["score"] for p in raw} == pytest.approx(dict(zip(["toxic", "non_toxic"], s.logits,
                                                                           strict=True)), abs=1e-5)
    [pair] = grpc_scores(http_server, [("\n\nHuman: hi", "\n\nAssistant: hello")], "classifier")
    assert post({"inputs": ["\n\nHuman: hi", "\n\nAssistant: hello"], "raw_scores": True}).json()[0]["score"] == \
        pytest.approx(max(pair.logits), abs=1e-5)
    batch = requests.post(url(http_server, "/predict"), json={"model": "pairwise", "inputs": [[t] for t in TEXTS],
                                                              "truncate": True}, timeout=30).json()
    for preds, solo in zip(batch, grpc_scores(http_server, TEXTS, "pairwise"), strict=True):
        assert preds == [{"score": pytest.approx(float(sigmoid(solo.reward)), abs=1e-5), "label": "reward"}]


def test_openrlhf_query_with_the_policy_eos_is_stripped_by_http_strip(http_server, bundles):
    import requests

    policy = Tokenizer.from_file(str(bundles["gpt2"] / "tokenizer.json"))  # a GPT-2 policy tokenizer
    eos_id = policy.token_to_id(EOS)
    prompt_ids = policy.encode("\n\nHuman: how do I bake bread?", add_special_tokens=False).ids
    action_ids = policy.encode("\n\nAssistant: mix flour, water and yeast", add_special_tokens=False).ids + [eos_id]
    query = policy.decode(prompt_ids + action_ids, skip_special_tokens=False)  # what agent.py sends
    assert query.endswith(EOS)
    clean = policy.decode(prompt_ids + action_ids[:-1], skip_special_tokens=False)
    r = requests.post(url(http_server, "/get_reward?model=gpt2"), json={"query": [query], "prompts": [""],
                                                                       "labels": [""]}, timeout=30)
    assert r.status_code == 200, r.text
    [stripped, raw] = grpc_scores(http_server, [clean, query], "gpt2")
    assert r.json()["rewards"] == pytest.approx([stripped.reward], abs=1e-5)
    # the EOS was cut before tokenizing: the server saw the clean text's tokens, not one more
    assert r.json()["extra_logs"]["num_tokens"] == [stripped.num_tokens] and raw.num_tokens == stripped.num_tokens + 1
    # pairwise has no strip list: the same query is scored as sent
    r = requests.post(url(http_server, "/get_reward?model=" + VERL_MODEL_PATH), json={"query": [query]}, timeout=30)
    assert r.json()["rewards"] == pytest.approx([grpc_scores(http_server, [query], "pairwise")[0].reward], abs=1e-5)


def test_models_list_and_health(http_server):
    import requests

    models = requests.get(url(http_server, "/v1/models"), timeout=10).json()
    ids = {m["id"]: m["root"] for m in models["data"]}
    assert models["object"] == "list"
    assert ids == {"pairwise": "pairwise", "classifier": "classifier", "gpt2": "gpt2", "safe": "safe",
                   VERL_MODEL_PATH: "pairwise", "/mnt/models/tox": "classifier"}
    assert requests.get(url(http_server, "/health"), timeout=10).status_code == 200
