"""The OpenRLHF-compatible HTTP endpoint, served by aiohttp in the gRPC server's event loop.

``POST /get_reward`` takes OpenRLHF's remote reward model request and answers its response::

    {"query": ["<prompt + response>", ...], "prompts": [...], "labels": [...]}     (extra keys ignored)
 -> {"rewards": [r, ...], "scores": [r, ...], "extra_logs": {"num_tokens": [...], ...}}

Each query is a full text (prompt and response already joined by the trainer's template) and
is scored as a ``text`` item with ``http_model`` (or ``?model=NAME``; ``?normalize=true``
standardises rewards). ``scores`` repeats the rewards, as OpenRLHF's own ``serve_rm`` does;
``extra_logs`` holds per-item token counts, truncation flags and, for a composite, each part.
OpenRLHF sends one sample per request and many requests at once: they meet in the model's
batcher exactly like gRPC items. ``GET /health`` answers 200 while serving, 503 otherwise.

Example (what OpenRLHF's ``remote_rm_fn`` does)::

    requests.post("http://127.0.0.1:8000/get_reward", json={"query": [text], "prompts": [p], "labels": [""]})
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from aiohttp import web
from rewardserve.service.config import ServiceConfig
from rewardserve.service.domain import ItemScore, ScoreOptions
from rewardserve.service.edge.http_common import (
    FAILURE,
    backpressure_middleware,
    checked_texts,
    resolve,
    score_items,
    served_name,
)
from rewardserve.service.edge.servicer import RewardServicer
from rewardserve.service.edge.sglang import SglangRoutes
from rewardserve.service.edge.status import http_errors
from rewardserve.service.edge.tei import TeiRoutes
from rewardserve.service.edge.vllm import VllmRoutes
from rewardserve.service.errors import InvalidArgument, ServiceError
from rewardserve.service.metrics import ServiceMetrics

from rewardserve.formatting import TextItem

logger = logging.getLogger(__name__)

GET_REWARD = "POST /get_reward"  # the ``method`` label of the request metrics
HEALTH = "GET /health"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class RewardQuery:
    """One ``/get_reward`` request: the texts and which model scores them."""

    texts: tuple[str, ...]
    options: ScoreOptions


def reward_query_from_http(body: bytes, params: Mapping[str, str], default_model: str,
                           max_items: int) -> RewardQuery:
    """Parse and validate the JSON body and query parameters; InvalidArgument names the problem."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidArgument(f"body: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"body: expected a JSON object with 'query', got {type(data).__name__}")
    if "query" not in data:
        raise InvalidArgument("body.query: missing (a list of texts: prompt + response)")
    texts = data["query"]
    if isinstance(texts, str):
        raise InvalidArgument("body.query: expected a list of strings, got one string")
    if not isinstance(texts, list):
        raise InvalidArgument(f"body.query: expected a list of strings, got {type(texts).__name__}")
    checked_texts(texts, "body.query", max_items, "texts")
    normalize = params.get("normalize", "").strip().lower()
    if normalize not in _TRUE + _FALSE:
        raise InvalidArgument(f"normalize: expected true or false, got {params['normalize']!r}")
    return RewardQuery(tuple(texts), ScoreOptions(model=params.get("model", default_model),
                                                  normalize=normalize in _TRUE))


def reward_response_to_json(scores: Sequence[ItemScore]) -> dict:
    """OpenRLHF's response: rewards, scores (the same values) and per-item extra logs."""
    rewards = [s.reward for s in scores]
    logs: dict[str, list[float]] = {
        "num_tokens": [float(s.num_tokens) for s in scores],
        "truncated": [float(s.truncated) for s in scores],
    }
    for j, part in enumerate(scores[0].parts if scores else ()):  # a composite: each term's value
        key = f"{part.model}:{part.label}" if part.label else part.model
        logs[key if key not in logs else f"{key}#{j}"] = [s.parts[j].value for s in scores]
    return {"rewards": rewards, "scores": list(rewards), "extra_logs": logs}


def _model_label(endpoint: RewardHttpApp, request: web.Request) -> str:
    return endpoint.servicer.model_label(served_name(endpoint, request.query.get("model", "")))


class RewardHttpApp:
    """The endpoint's handlers over the gRPC servicer's registry (one registry, one batcher per model).

    Example::

        endpoint = RewardHttpApp(servicer, config, metrics)
        port = await endpoint.start("127.0.0.1", 8000)     # in the running event loop
        await endpoint.stop()
    """

    def __init__(self, servicer: RewardServicer, config: ServiceConfig, metrics: ServiceMetrics):
        self.servicer = servicer
        self.config = config
        self.metrics = metrics
        self._runner: web.AppRunner | None = None

    @http_errors(GET_REWARD, _model_label)
    async def get_reward(self, request: web.Request) -> web.Response:
        """Score each query as a text item; answer in OpenRLHF's format."""
        try:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise InvalidArgument(f"body: larger than max_request_bytes ({self.config.max_request_bytes})") from None
            query = reward_query_from_http(body, request.query, "", self.config.max_items_per_request)
            model = resolve(self, query.options.model)  # aliases too; empty: http_model
            scores = await score_items(self, model, [TextItem(t) for t in query.texts],
                                       replace(query.options, model=model.name), "body.query[{}]".format)
        except ServiceError as e:
            request[FAILURE] = e  # its Retry-After estimate, for the back-pressure middleware
            raise
        return web.json_response(reward_response_to_json(scores))

    @http_errors(HEALTH)
    async def health(self, request: web.Request) -> web.Response:
        """200 while the models are loaded and the server is not draining (503 otherwise)."""
        self.servicer.models()
        return web.json_response({"status": "SERVING"})

    def application(self, middlewares: Sequence = ()) -> web.Application:
        """The aiohttp application; ``middlewares`` run before every handler (e.g. auth)."""
        # Back-pressure first (outermost): it adds Retry-After to every 429/503, the auth
        # middleware's refusals included, and turns the verl routes' 429 into 503.
        app = web.Application(middlewares=[backpressure_middleware(self.servicer), *middlewares],
                              client_max_size=self.config.max_request_bytes)
        app.router.add_post("/get_reward", self.get_reward)
        app.router.add_get("/health", self.health)
        for routes in (VllmRoutes, SglangRoutes, TeiRoutes):  # same registry, batchers, metrics, auth, limits
            routes(self.servicer, self.config, self.metrics).add_to(app)
        return app

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None,
                    middlewares: Sequence = (), reuse_port: bool = False) -> int:
        """Listen in the running event loop (HTTPS with ``ssl_context``); return the bound port.

        ``reuse_port``: share the port with the other processes of ``serve --processes N``.
        """
        # On stop, requests in progress get grace_period_s to finish (aiohttp's graceful shutdown).
        self._runner = web.AppRunner(self.application(middlewares), access_log=None,
                                     shutdown_timeout=self.config.grace_period_s)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, host, port, ssl_context=ssl_context, reuse_port=reuse_port).start()
        except BaseException:
            await self._runner.cleanup()
            raise
        bound = self._runner.addresses[0][1]
        logger.info("OpenRLHF endpoint on %s://%s:%d/get_reward", "https" if ssl_context else "http", host, bound)
        return bound

    async def stop(self) -> None:
        """Stop listening; requests in progress get up to ``grace_period_s`` to finish."""
        if self._runner is not None:
            await self._runner.cleanup()
