"""Bad input on the vLLM, SGLang and TEI routes: 400 naming the field, 401, 404, 413, 503; never a 500."""

from __future__ import annotations

import pytest
import requests

from .conftest import ServerThread, make_config

pytestmark = pytest.mark.e2e
TOKEN = "t" * 32


@pytest.fixture(scope="module")
def guarded(bundles):
    s = ServerThread(make_config(bundles, names=("pairwise",), http_port=0, auth_token=TOKEN,
                                 model_aliases={"/models/rm": "pairwise"}, max_request_bytes=4096))
    yield s
    s.stop()


def post(server, path, body=None, token=TOKEN, data=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(f"http://127.0.0.1:{server.server.http_port}{path}", json=body, data=data,
                         headers=headers, timeout=30)


@pytest.mark.parametrize("path, body, field", [
    ("/classify", {"input": [1, 2, 3]}, "input: token ids are not supported"),
    ("/classify", {"input": [[1, 2]]}, "input: token ids are not supported"),
    ("/v1/classify", {}, "input: exactly one of"),
    ("/v1/classify", {"input": "x", "use_activation": "no"}, "use_activation: expected bool"),
    ("/classify", {"input": "x", "truncate_prompt_tokens": 5}, "truncate_prompt_tokens: 5 is not supported"),
    ("/classify", {"messages": [{"role": "user"}]}, "messages[0]: must be an object with 'role' and 'content'"),
    ("/classify", {"input": ["ok", ""]}, "input[1]: empty"),
    ("/v1/embeddings", {"model": "/models/rm"}, "input: missing"),
    ("/v1/embeddings", {"input": [5]}, "input: token ids are not supported"),
    ("/predict", {"inputs": "x", "truncation_direction": "Up"}, "truncation_direction: expected Right or Left"),
    ("/predict", {"inputs": [["a", "b", "c"]]}, "inputs[0]: expected [text] or [text_a, text_b]"),
    ("/predict", {"input": "x"}, "inputs: missing"),
    ("/predict", {"inputs": "word " * 200}, "inputs: "),  # too long without truncate: TEI refuses it too
])
def test_bad_fields_are_400_naming_the_field(guarded, path, body, field):
    r = post(guarded, path, body)
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(field) and r.json()["code"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize("path", ["/classify", "/v1/classify", "/v1/embeddings", "/predict"])
def test_auth_unknown_model_too_large_and_bad_json(guarded, path):
    body = {"model": "/models/other", "input": "x", "inputs": "x"}
    assert post(guarded, path, body, token=None).status_code == 401
    assert post(guarded, path, body, token="wrong" * 8).status_code == 401
    r = post(guarded, path, body)
    assert r.status_code == 404 and "'/models/other' not found" in r.json()["error"]
    assert "pairwise" in r.json()["error"] and "/models/rm" in r.json()["error"]  # served models and aliases
    r = post(guarded, path, {"input": "x" * 5000, "inputs": "x" * 5000})
    assert r.status_code == 413 and "max_request_bytes" in r.json()["error"]
    r = post(guarded, path, data=b"{not json")
    assert r.status_code == 400 and r.json()["error"].startswith("body: not valid JSON")


def test_draining_is_503_with_retry_after_on_every_route(bundles):
    s = ServerThread(make_config(bundles, names=("pairwise",), http_port=0))
    try:
        s.server.servicer.draining = True  # as after SIGTERM: every protocol answers UNAVAILABLE
        for path in ("/classify", "/v1/embeddings", "/predict", "/get_reward"):
            r = post(s, path, {"input": "x", "inputs": "x", "query": ["x"]}, token=None)
            assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1, (path, r.text)
    finally:
        s.server.servicer.draining = False
        s.stop()
