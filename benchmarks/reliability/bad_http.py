"""The bad HTTP requests the reliability suite sends: hypothesis strategies over the HTTP routes.

vLLM ``/classify`` and ``/v1/classify``, SGLang ``/v1/embeddings``, TEI ``/predict`` and OpenRLHF
``/get_reward``, each with generated bodies: garbage bytes, text that is not JSON, JSON of any
shape, route-shaped objects with fields of the wrong type or value (token ids, null, nested
lists, unknown models, odd Unicode, empty and long texts, huge item counts), and bodies past
``max_request_bytes``. Every answer must be one of :data:`ALLOWED` (the README's statuses), never a
500 or a hang; a 200 must be JSON with one result per input where the count is known.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from hypothesis import strategies as st
from rewardserve.benchmarks.reliability.bad_requests import CORPUS, LONG_TEXTS, MODELS, NASTY, Call

PATHS = ("/classify", "/v1/classify", "/v1/embeddings", "/predict", "/get_reward")
ALLOWED = (200, 400, 404, 413, 429, 503)
TOO_LARGE = b'{"input": "' + b"x" * (16 << 20) + b'"}'  # just past the default max_request_bytes (16 MiB)
HUGE_COUNTS = (1025, 5000)  # past max_items_per_request (1024)


def _json_values():
    """Any JSON value (small), for fields and whole bodies."""
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                        st.text(max_size=12))
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                        max_leaves=12)


def _body(path: str, text, texts, anything) -> st.SearchStrategy[tuple[dict, int | None]]:
    """Route-shaped objects: (body, inputs a 200 must answer, None when the count is not fixed)."""
    model = st.one_of(st.sampled_from(MODELS), st.text(max_size=12), anything)
    if path == "/predict":
        return st.one_of(
            st.builds(lambda m, t, r, tr, d: ({"model": m, "inputs": t, "raw_scores": r, "truncate": tr,
                                               "truncation_direction": d}, 1), model, text, anything,
                      st.one_of(st.booleans(), anything), st.one_of(st.sampled_from(["left", "right", "up"]), anything)),
            st.builds(lambda t: ({"inputs": t}, len(t)), texts),
            st.builds(lambda v: ({"inputs": v}, None), anything),
        )
    if path == "/get_reward":
        return st.one_of(st.builds(lambda q, m: ({"query": q, "model": m}, len(q)), texts, model),
                         st.builds(lambda v: ({"query": v}, None), anything))
    fields = {"input": st.one_of(text.map(lambda t: (t, 1)), texts.map(lambda ts: (ts, len(ts))),
                                 st.lists(st.integers(0, 2**40), min_size=1, max_size=4).map(lambda ids: (ids, None)),
                                 anything.map(lambda v: (v, None)))}
    if path == "/v1/embeddings":
        return st.builds(lambda m, i: ({"model": m, "input": i[0]}, i[1]), model, fields["input"])
    message = st.fixed_dictionaries({"role": st.one_of(st.sampled_from(["user", "assistant", "system"]), anything),
                                     "content": st.one_of(text, anything)})
    return st.one_of(
        st.builds(lambda m, i, a, tr: ({"model": m, "input": i[0], "use_activation": a,
                                        "truncate_prompt_tokens": tr}, i[1]),
                  model, fields["input"], st.one_of(st.booleans(), anything), st.one_of(st.integers(-5, 600), anything)),
        st.builds(lambda m, ms: ({"model": m, "messages": ms}, None), model,
                  st.one_of(st.lists(message, max_size=3), anything)),
        st.builds(lambda i, ms: ({"input": i, "messages": ms}, None), text, st.lists(message, min_size=1, max_size=2)),
    )


def strategies():
    """The HTTP call strategy: ``Call(kind, "POST <path>", body bytes, inputs a 200 must answer)``."""
    corpus = st.integers(0, len(CORPUS) - 1).map(CORPUS.__getitem__)
    long_text = st.integers(0, len(LONG_TEXTS) - 1).map(LONG_TEXTS.__getitem__)
    text = st.one_of(st.text(max_size=24), st.text(alphabet=st.sampled_from(NASTY), max_size=24), corpus, corpus,
                     st.just(""), long_text)
    huge = st.sampled_from(HUGE_COUNTS).map(lambda n: ["x"] * n)
    texts = st.one_of(st.lists(text, min_size=1, max_size=4), st.lists(text, max_size=0), huge)
    anything = _json_values()
    calls = []
    for path in PATHS:
        method = f"POST {path}"
        calls += [
            _body(path, text, texts, anything).map(
                lambda b, m=method: Call("http route-shaped", m, json.dumps(b[0]).encode(), b[1])),
            _body(path, text, texts, anything).map(
                lambda b, m=method: Call("http route-shaped", m, json.dumps(b[0]).encode(), b[1])),
            anything.map(lambda v, m=method: Call("http any JSON", m, json.dumps(v).encode())),
            st.binary(max_size=64).map(lambda b, m=method: Call("http garbage bytes", m, b)),
            st.text(max_size=32).map(lambda t, m=method: Call("http not JSON", m, ("{" + t).encode())),
        ]
    calls.append(st.sampled_from(PATHS).map(lambda p: Call("http body too large", f"POST {p}", TOO_LARGE)))
    return st.one_of(*calls)


def post(base_url: str, call: Call, timeout_s: float) -> tuple[int, bytes]:
    """Send one call; return (HTTP status, body). A timeout or a dropped connection raises."""
    path = call.method.removeprefix("POST ")
    request = urllib.request.Request(base_url + path, data=call.payload, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def outcome(call: Call, status: int, body: bytes) -> tuple[str, str]:
    """``HTTP <status>`` (or ``HTTP WRONG_SHAPE``) and what is wrong."""
    if status != 200:
        return f"HTTP {status}", body[:200].decode(errors="replace")
    try:
        data = json.loads(body)
    except ValueError:
        return "HTTP WRONG_SHAPE", "200 with a body that is not JSON"
    if call.expect_items is not None:
        path = call.method.removeprefix("POST ")
        if path == "/predict":
            got = len(data) if call.expect_items != 1 or (data and isinstance(data[0], list)) else 1
        elif path == "/get_reward":
            got = len(data.get("rewards", []))
        else:
            got = len(data.get("data", []))
        if got != call.expect_items:
            return "HTTP WRONG_SHAPE", f"{got} results for {call.expect_items} inputs"
    return "HTTP 200", ""
