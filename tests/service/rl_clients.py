"""The HTTP reward clients of verl 0.9.1 and OpenRLHF 0.11.2, rebuilt from their released source.

- :func:`verl_post_request`: ``verl/experimental/reward_loop/reward_loop.py``
  ``RewardLoopWorker._post_request`` (16 tries, ``min(2**attempt, 30)`` s backoff, 4xx raised at once);
- :func:`openrlhf_post_request`: ``openrlhf/utils/agent.py`` ``_fetch_rewards_via_http._post_request``
  (5 tries, 1 s sleep after any error, 180 s total timeout).

Each opens a new aiohttp session per request, as the originals do. ``seen`` (not in the
originals) records each refusal's status and ``Retry-After`` so tests can check them.
"""

from __future__ import annotations

import asyncio

import aiohttp


def _record(seen: list | None, resp: aiohttp.ClientResponse) -> None:
    if seen is not None and resp.status >= 400:
        seen.append((resp.status, resp.headers.get("Retry-After")))


async def verl_post_request(base: str, payload: dict, endpoint: str, max_retries: int = 16,
                            seen: list | None = None) -> dict:
    """verl's ``_post_request``."""
    last = None
    for attempt in range(max_retries):
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:  # noqa: SIM117
                async with session.post(f"{base}/{endpoint}", json=payload) as resp:
                    _record(seen, resp)
                    resp.raise_for_status()
                    return await resp.json()
        except aiohttp.ClientResponseError as e:
            if 400 <= e.status < 500:
                raise  # verl does not retry 4xx
            last = e
        except (TimeoutError, aiohttp.ClientConnectorError) as e:
            last = e
        if attempt < max_retries - 1:
            await asyncio.sleep(min(2**attempt, 30))
    raise last


async def openrlhf_post_request(url: str, data: dict, try_max_times: int = 5, seen: list | None = None) -> dict:
    """OpenRLHF's ``_post_request`` (it logs and swallows every error, then sleeps 1 s)."""
    timeout = aiohttp.ClientTimeout(total=180)
    for _ in range(try_max_times):
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:  # noqa: SIM117
                async with session.post(url, json=data) as response:
                    _record(seen, response)
                    response.raise_for_status()
                    return await response.json()
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(1)
    raise RuntimeError(f"Request error for {try_max_times} times, returning None. Please check the API server.")
