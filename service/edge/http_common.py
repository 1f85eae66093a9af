"""What every HTTP route shares: the JSON body, model names (aliases), text hygiene, scoring, errors.

A route handler is wrapped by :func:`http_route`, which reads the body once (``413`` beyond
``max_request_bytes``, ``400`` for bad JSON), labels the request metrics with the model the
body names, maps exceptions through :func:`~rewardserve.service.edge.status.http_errors`
(the one mapping of errors to statuses) and leaves the back-pressure headers to
:mod:`~rewardserve.service.edge.backpressure`. Handlers score through the model's batcher
with :func:`score_items`, exactly as ``/get_reward`` and gRPC do.

Example::

    class Routes:                       # needs .servicer, .config and .metrics
        @http_route("POST /classify")
        async def classify(self, request):
            body = request[BODY]        # the parsed JSON
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from rewardserve.service.domain import ItemScore, ScoreOptions
from rewardserve.service.edge.backpressure import OVERLOAD_503_PATHS, retry_after_header, retry_after_s
from rewardserve.service.edge.status import http_errors
from rewardserve.service.errors import InvalidArgument, ModelNotFound, ServiceError

from rewardserve.formatting import ChatItem, Item, Message, PairItem, TextItem

BODY = web.RequestKey("rewardserve_body", object)  # the parsed JSON body of a POST
_BODY_ERROR = web.RequestKey("rewardserve_body_error", object)
FAILURE = web.RequestKey("rewardserve_failure", object)  # the ServiceError a handler raised


class BodyTooLarge(InvalidArgument):
    """The body is larger than ``max_request_bytes``: HTTP 413 (INVALID_ARGUMENT in the metrics)."""

    http_status = 413


async def read_json(request: web.Request, max_bytes: int) -> Any:
    """The request's JSON body; BodyTooLarge or InvalidArgument naming the problem."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyTooLarge(f"body: larger than max_request_bytes ({max_bytes})") from None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidArgument(f"body: not valid JSON ({e})") from None


def served_name(endpoint, name: str) -> str:
    """The served model or composite a requested name stands for (aliases resolved; empty: the default)."""
    return dict(endpoint.config.model_aliases).get(name, name) if name else endpoint.config.http_model


def resolve(endpoint, name: str):
    """The model (or composite) for a requested name; ModelNotFound names the served models and aliases."""
    registry = endpoint.servicer.models()
    try:
        return registry.get(served_name(endpoint, name))
    except ModelNotFound as e:
        aliases = {a: n for a, n in endpoint.config.model_aliases}
        raise ModelNotFound(f"{e}; aliases {aliases}") from None


def _body_model(endpoint, request: web.Request) -> str:
    body = request.get(BODY)
    name = body.get("model") if isinstance(body, dict) else None
    return endpoint.servicer.model_label(served_name(endpoint, name if isinstance(name, str) else ""))


def http_route(method: str, reads_body: bool = True):
    """Decorate a handler method: body parsed into ``request[BODY]``, errors and metrics as ``/get_reward``."""

    def decorate(fn):
        @functools.wraps(fn)
        async def inner(self, request: web.Request):
            try:
                if request.get(_BODY_ERROR) is not None:
                    raise request[_BODY_ERROR]
                return await fn(self, request)
            except ServiceError as e:
                request[FAILURE] = e  # for the back-pressure middleware (Retry-After) and the status below
                raise

        counted = http_errors(method, _body_model if reads_body else None)(inner)

        @functools.wraps(fn)
        async def outer(self, request: web.Request):
            if reads_body:
                try:
                    request[BODY] = await read_json(request, self.config.max_request_bytes)
                except ServiceError as e:
                    request[_BODY_ERROR] = e
            response = await counted(self, request)
            status = getattr(request.get(FAILURE), "http_status", None)
            if status is not None:
                response.set_status(status)
            return response

        return outer

    return decorate


def texts_of(value: Any, field: str, max_items: int) -> list[str]:
    """A string or a non-empty list of strings; token ids are refused as unsupported."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise InvalidArgument(f"{field}: expected a string or a list of strings, got {type(value).__name__}")
    if any(isinstance(v, (int, list)) and not isinstance(v, bool) for v in value):
        raise InvalidArgument(f"{field}: token ids are not supported; send text (the server tokenizes with the "
                              "reward model's own tokenizer)")
    return checked_texts(value, field, max_items)


def checked_texts(texts: list, field: str, max_items: int, noun: str = "inputs") -> list[str]:
    """``texts`` if it holds 1 to ``max_items`` non-empty strings; InvalidArgument naming the first problem."""
    if not texts:
        raise InvalidArgument(f"{field}: empty")
    if len(texts) > max_items:
        raise InvalidArgument(f"{field}: {len(texts)} {noun}, at most {max_items} per request (max_items_per_request)")
    for i, v in enumerate(texts):
        if not isinstance(v, str):
            raise InvalidArgument(f"{field}[{i}]: expected a string, got {type(v).__name__}")
        if not v:
            raise InvalidArgument(f"{field}[{i}]: empty")
    return texts


def optional(body: dict, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    """``body[key]`` when present and not null, checked against ``kind`` (400 naming the field)."""
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InvalidArgument(f"{key}: expected {names}, got {type(value).__name__}")
    return value


def strip_item(endpoint, model_name: str, item: Item) -> Item:
    """Remove the model's ``http_strip`` strings from an item's texts (OpenRLHF query hygiene)."""
    cut = dict(endpoint.config.http_strip).get(model_name, ())
    if not cut:
        return item

    def clean(text: str) -> str:
        for s in cut:
            text = text.replace(s, "")
        return text

    if isinstance(item, TextItem):
        return TextItem(clean(item.text))
    if isinstance(item, PairItem):
        return PairItem(clean(item.prompt), clean(item.response))
    return ChatItem(tuple(Message(m.role, clean(m.content)) for m in item.messages))


async def score_items(endpoint, model, items: Sequence[Item], options: ScoreOptions,
                      name_of: Callable[[int], str]) -> list[ItemScore]:
    """Score through the model's batcher with the server's request deadline (HTTP carries none)."""
    items = [strip_item(endpoint, model.name, it) for it in items]
    deadline = time.monotonic() + endpoint.config.request_timeout_s
    return await model.score(items, options, deadline, name_of=name_of)


def outputs(model, score: ItemScore) -> tuple[list[str], list[float]]:
    """(labels, raw outputs) of one score: the logits, or a composite's total as its one output."""
    if score.logits:
        return list(model.spec.labels), list(score.logits)
    return [model.name], [score.reward]


def backpressure_middleware(servicer, overload_503_paths=OVERLOAD_503_PATHS):
    """An aiohttp middleware (put it first): Retry-After on 429/503, and 503 for the verl routes."""

    @web.middleware
    async def backpressure(request: web.Request, handler):
        response = await handler(request)
        if response.status not in (429, 503):
            return response
        if response.status == 429 and request.path in overload_503_paths:
            response.set_status(503)
        if "Retry-After" not in response.headers:
            response.headers["Retry-After"] = retry_after_header(
                retry_after_s(request.get(FAILURE), servicer.registry))
        return response

    return backpressure
