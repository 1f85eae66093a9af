"""Python clients of the reward server, sync and asyncio; they return plain dataclasses.

A client takes one address or several (a list, ``"a:1,b:2"``, or ``dns:///NAME:PORT``) and
balances RPCs over the replicas with gRPC's round_robin policy (:mod:`service.targets`).
Calls that fail with UNAVAILABLE (server loading, draining or restarting) are retried with
exponential backoff and jitter within the call's deadline; each retry is a new pick, so it goes
to another replica. Other failures raise
:class:`RewardServiceError` carrying the gRPC status code and message. A server with TLS or
tokens needs ``tls_ca_file`` (plus ``tls_cert_file``/``tls_key_file`` for mutual TLS) and
``token`` (sent as ``authorization: Bearer <token>``; see :mod:`service.credentials`).

Example::

    with RewardClient("127.0.0.1:50051") as client:
        result = client.score([("How do I bake bread?", "Mix flour and water."), "plain text"])
        result.scores[0].reward

    async with AsyncRewardClient("127.0.0.1:50051") as client:
        cmp = await client.compare("Hi", [("Hello!", "Go away.")])
        cmp.comparisons[0].prob_a_preferred
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from rewardserve.service import domain
from rewardserve.service.client import convert
from rewardserve.service.client.credentials import bearer_metadata, open_channel
from rewardserve.service.client.reward_func import Penalty, RewardFunc
from rewardserve.service.client.targets import CHANNEL_OPTIONS, channel_target
from rewardserve.service.domain import CompareResult, ModelInfo, ScoreOptions, ScoreResult

from rewardserve.enums import Truncation
from rewardserve.v1 import reward_pb2_grpc

PUSHBACK_KEY = "grpc-retry-pushback-ms"  # gRPC retry design (A6): when the server says to retry


class RewardServiceError(Exception):
    """A call failed: ``code`` is the grpc.StatusCode, ``details`` the server's message."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of calls failing with one of ``codes``: exponential backoff with full jitter."""

    attempts: int = 5
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    codes: tuple[grpc.StatusCode, ...] = (grpc.StatusCode.UNAVAILABLE,)
    # A refusal carrying the server's grpc-retry-pushback-ms (queue full, overloaded, draining)
    # is retried after exactly that long, so clients come back when the queue has drained.
    pushback_codes: tuple[grpc.StatusCode, ...] = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)

    def backoff_s(self, attempt: int) -> float:
        """Sleep before retry number ``attempt`` (1-based)."""
        return random.uniform(0, min(self.max_backoff_s, self.initial_backoff_s * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class ModelList:
    """The models a server holds and which one is the default."""

    models: tuple[ModelInfo, ...]
    default: str


def _options(model: str, truncation: Truncation | str | None, normalize: bool) -> ScoreOptions:
    return ScoreOptions(model=model, truncation=None if truncation is None else Truncation(truncation),
                        normalize=normalize)


def score_request(items: Iterable[Any], *, model: str = "", truncation: Truncation | str | None = None,
                  normalize: bool = False, request_id: str = "") -> domain.ScoreRequest:
    """Build a request from items: ``str``, ``(prompt, response)``, message lists or JSON dicts."""
    built = tuple(domain.item_from_obj(it, f"items[{i}]") for i, it in enumerate(items))
    return domain.ScoreRequest(built, _options(model, truncation, normalize), request_id)


class _Base:
    def __init__(self, timeout_s: float, retry: RetryPolicy, token: str | None = None):
        self.timeout_s = timeout_s
        self.retry = retry
        self._metadata = bearer_metadata(token)  # every call's `authorization: Bearer <token>`

    def _should_retry(self, e: grpc.RpcError, attempt: int, deadline: float) -> float | None:
        """Seconds to sleep before retrying (the server's pushback when it sent one), or None to give up."""
        if attempt >= self.retry.attempts:
            return None
        pushback = pushback_s(e)
        if pushback is not None and e.code() in self.retry.pushback_codes:
            delay = pushback
        elif e.code() in self.retry.codes:
            delay = self.retry.backoff_s(attempt)
        else:
            return None
        return delay if time.monotonic() + delay < deadline else None


def pushback_s(e: grpc.RpcError) -> float | None:
    """The server's ``grpc-retry-pushback-ms`` trailer in seconds (None: absent or not a count of ms)."""
    for key, value in getattr(e, "trailing_metadata", lambda: None)() or ():
        if key == PUSHBACK_KEY:
            text = value.decode() if isinstance(value, bytes) else str(value)
            return int(text) / 1000 if text.isdigit() else None  # gRPC: a negative value means do not retry
    return None


class RewardClient(_Base):
    """Blocking client. Thread-safe; reuse one per process.

    Example::

        client = RewardClient("127.0.0.1:50051", timeout_s=10)
        client.score(["text one", "text two"], model="toxicity").scores[1].probabilities
    """

    def __init__(self, target: str | Sequence[str], *, timeout_s: float = 30.0, retry: RetryPolicy = RetryPolicy(),
                 tls_ca_file: str | None = None, tls_cert_file: str | None = None, tls_key_file: str | None = None,
                 token: str | None = None):
        super().__init__(timeout_s, retry, token)
        self._channel = open_channel(channel_target(target), CHANNEL_OPTIONS, tls_ca_file=tls_ca_file,
                                     tls_cert_file=tls_cert_file, tls_key_file=tls_key_file)
        self._stub = reward_pb2_grpc.RewardServiceStub(self._channel)

    def _call(self, method: str, request, timeout_s: float | None):
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        attempt = 0
        while True:
            attempt += 1
            try:
                return getattr(self._stub, method)(request, timeout=max(deadline - time.monotonic(), 0.0),
                                                       metadata=self._metadata)
            except grpc.RpcError as e:
                delay = self._should_retry(e, attempt, deadline)
                if delay is None:
                    raise RewardServiceError(e.code(), e.details()) from None
                time.sleep(delay)

    def score(self, items: Iterable[Any], *, model: str = "", truncation: Truncation | str | None = None,
              normalize: bool = False, request_id: str = "", timeout_s: float | None = None) -> ScoreResult:
        """Score items; see :func:`score_request` for the item forms."""
        req = score_request(items, model=model, truncation=truncation, normalize=normalize, request_id=request_id)
        return convert.score_result_from_pb(self._call("Score", convert.score_request_to_pb(req), timeout_s))

    def compare(self, prompt: str, pairs: Sequence[tuple[str, str]], *, model: str = "",
                truncation: Truncation | str | None = None, normalize: bool = False,
                timeout_s: float | None = None) -> CompareResult:
        """Compare pairs of responses to one prompt."""
        req = domain.CompareRequest(prompt, tuple(tuple(p) for p in pairs), _options(model, truncation, normalize))
        return convert.compare_result_from_pb(self._call("Compare", convert.compare_request_to_pb(req), timeout_s))

    def list_models(self, timeout_s: float | None = None) -> ModelList:
        """The server's models and its default model."""
        msg = self._call("ListModels", convert.empty_list_models(), timeout_s)
        return ModelList(tuple(convert.model_info_from_pb(m) for m in msg.models), msg.default_model)

    def get_model(self, name: str = "", timeout_s: float | None = None) -> ModelInfo:
        """One model's info (empty name: the default model)."""
        return convert.model_info_from_pb(self._call("GetModel", convert.get_model_request(name), timeout_s))

    def as_reward_func(self, model: str = "", *, normalize: bool = False, truncation: Truncation | str | None = None,
                       penalty_model: str | None = None, penalty_label: str | None = None,
                       penalty_weight: float = 1.0, empty_reward: float | None = None, name: str | None = None,
                       timeout_s: float | None = None) -> RewardFunc:
        """A TRL ``reward_funcs`` entry: ``f(prompts, completions, **kw) -> list[float]``, one request a call.

        With ``penalty_model`` the result is reward - ``penalty_weight`` x P(``penalty_label``) of
        the completion (default label: anything but the classifier's reward label). Empty
        completions are not sent (the server refuses them); they get ``empty_reward``. See
        :mod:`service.reward_func`.
        """
        if penalty_model is None and penalty_label is not None:
            raise ValueError("penalty_label needs penalty_model")
        penalty = None if penalty_model is None else Penalty(penalty_model, penalty_label, penalty_weight)
        return RewardFunc(self, model, normalize=normalize, truncation=truncation, penalty=penalty,
                          empty_reward=empty_reward, name=name, timeout_s=timeout_s)

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def __enter__(self) -> RewardClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncRewardClient(_Base):
    """asyncio client; same methods as :class:`RewardClient`, awaitable, plus ``score_stream``.

    Example::

        async with AsyncRewardClient("127.0.0.1:50051") as client:
            results = await asyncio.gather(*(client.score([t]) for t in texts))
    """

    def __init__(self, target: str | Sequence[str], *, timeout_s: float = 30.0, retry: RetryPolicy = RetryPolicy(),
                 tls_ca_file: str | None = None, tls_cert_file: str | None = None, tls_key_file: str | None = None,
                 token: str | None = None):
        super().__init__(timeout_s, retry, token)
        self._channel = open_channel(channel_target(target), CHANNEL_OPTIONS, aio=True, tls_ca_file=tls_ca_file,
                                     tls_cert_file=tls_cert_file, tls_key_file=tls_key_file)
        self._stub = reward_pb2_grpc.RewardServiceStub(self._channel)

    async def _call(self, method: str, request, timeout_s: float | None):
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await getattr(self._stub, method)(request, timeout=max(deadline - time.monotonic(), 0.0),
                                                             metadata=self._metadata)
            except grpc.aio.AioRpcError as e:
                delay = self._should_retry(e, attempt, deadline)
                if delay is None:
                    raise RewardServiceError(e.code(), e.details()) from None
                await asyncio.sleep(delay)

    async def score(self, items: Iterable[Any], *, model: str = "", truncation: Truncation | str | None = None,
                    normalize: bool = False, request_id: str = "", timeout_s: float | None = None) -> ScoreResult:
        """Score items; see :func:`score_request` for the item forms."""
        req = score_request(items, model=model, truncation=truncation, normalize=normalize, request_id=request_id)
        return convert.score_result_from_pb(await self._call("Score", convert.score_request_to_pb(req), timeout_s))

    async def compare(self, prompt: str, pairs: Sequence[tuple[str, str]], *, model: str = "",
                      truncation: Truncation | str | None = None, normalize: bool = False,
                      timeout_s: float | None = None) -> CompareResult:
        """Compare pairs of responses to one prompt."""
        req = domain.CompareRequest(prompt, tuple(tuple(p) for p in pairs), _options(model, truncation, normalize))
        return convert.compare_result_from_pb(await self._call("Compare", convert.compare_request_to_pb(req), timeout_s))

    async def list_models(self, timeout_s: float | None = None) -> ModelList:
        """The server's models and its default model."""
        msg = await self._call("ListModels", convert.empty_list_models(), timeout_s)
        return ModelList(tuple(convert.model_info_from_pb(m) for m in msg.models), msg.default_model)

    async def get_model(self, name: str = "", timeout_s: float | None = None) -> ModelInfo:
        """One model's info (empty name: the default model)."""
        return convert.model_info_from_pb(await self._call("GetModel", convert.get_model_request(name), timeout_s))

    async def score_stream(self, requests: AsyncIterable[domain.ScoreRequest] | Iterable[domain.ScoreRequest],
                           timeout_s: float | None = None) -> AsyncIterator[ScoreResult]:
        """Stream requests; yield results as they complete (match them by ``request_id``). No retries."""

        async def to_pb():
            if isinstance(requests, AsyncIterable):
                async for r in requests:
                    yield convert.score_request_to_pb(r)
            else:
                for r in requests:
                    yield convert.score_request_to_pb(r)

        call = self._stub.ScoreStream(to_pb(), timeout=timeout_s or self.timeout_s, metadata=self._metadata)
        try:
            async for msg in call:
                yield convert.score_result_from_pb(msg)
        except grpc.aio.AioRpcError as e:
            raise RewardServiceError(e.code(), e.details()) from None

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()

    async def __aenter__(self) -> AsyncRewardClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
