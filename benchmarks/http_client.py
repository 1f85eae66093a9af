"""The HTTP client of the benchmark, sending as OpenRLHF's rollout agent does.

``openrlhf/utils/agent.py`` (``_fetch_rewards_via_http``, openrlhf 0.11.2) scores one query per
POST to ``/get_reward`` with ``{"query": [...], "prompts": [...], "labels": [...]}``, opening a
new ``aiohttp.ClientSession`` (so a new TCP connection) for every request, 180 s total timeout,
and reads the JSON answer. This client does the same, minus the retries: a failure is counted
by its cause (``HTTP 503``, ``ClientConnectorError``, ...) instead of being retried after 1 s.

Example::

    call = openrlhf_call("http://127.0.0.1:8000/get_reward", timeout_s=30)
    await call({"query": ["Human: hi Assistant: hello"], "prompts": [""], "labels": [""]})
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
from rewardserve.benchmarks.outcome import Call, RequestFailed


def openrlhf_body(texts: list[str]) -> dict:
    """OpenRLHF's request body for ``texts`` (no separate prompt or label: the query is the whole text)."""
    return {"query": list(texts), "prompts": [""] * len(texts), "labels": [""] * len(texts)}


def _json_post(url: str, timeout_s: float, answered: Callable[[dict, dict], bool]) -> Call:
    """A call that POSTs one body over a NEW connection (a session per request, as OpenRLHF's client
    does) and checks the JSON answer with ``answered(body, answer)``."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def call(body: dict) -> None:
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, session.post(url, json=body) as response:
                if response.status != 200:
                    await response.read()
                    raise RequestFailed(f"HTTP {response.status}")
                answer = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise RequestFailed(type(e).__name__) from None
        if not answered(body, answer):
            raise RequestFailed("BAD_ANSWER")

    return call


def litserve_call(url: str, timeout_s: float) -> Call:
    """The same client for the LitServe peer's ``POST /predict {"text"} -> {"reward"}`` (one text per POST)."""
    return _json_post(url, timeout_s, lambda body, answer: isinstance(answer.get("reward"), float))


def openrlhf_call(url: str, timeout_s: float) -> Call:
    """A call that POSTs one body over a new connection and reads the JSON rewards."""
    return _json_post(url, timeout_s, lambda body, answer: len(answer.get("rewards") or ()) == len(body["query"]))
