"""vLLM's classification API (also SGLang's ``/v1/classify``), as verl's reward loop calls it.

``POST /classify`` and ``POST /v1/classify`` take vLLM's ``ClassificationRequest``::

    {"model": "/models/Skywork-RM", "input": "<prompt + response>", "use_activation": false}
    {"model": "hh", "input": ["text one", "text two"], "truncate_prompt_tokens": -1}
    {"model": "hh", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
 -> {"id": "classify-...", "object": "list", "created": 1730000000, "model": "/models/Skywork-RM",
     "data": [{"index": 0, "label": "reward", "probs": [1.73], "num_classes": 1}],
     "usage": {"prompt_tokens": 12, "total_tokens": 12, "completion_tokens": 0, "prompt_tokens_details": null}}

``probs`` are the activated outputs (sigmoid for a one-logit model, never a softmax that would
make it 1.0; softmax for classifiers); ``use_activation: false`` returns the raw logits, and
verl reads ``data[-1].probs[-1]``. ``model`` may be an alias (``model_aliases``: verl sends
its configured model *path*); omitted, it is ``http_model``. Token-id input is refused (400).
``truncate_prompt_tokens``: -1 or the model's ``max_length`` keeps the last ``max_length``
tokens (vLLM's side); other values are 400. Without it the model's own truncation side applies
(vLLM would refuse an input that is too long). ``GET /v1/models`` lists the served models,
composites and aliases in OpenAI's shape.
"""

from __future__ import annotations

import time
import uuid

from aiohttp import web
from rewardserve.service.domain import ScoreOptions, item_from_obj
from rewardserve.service.edge.http_common import (
    BODY,
    http_route,
    optional,
    outputs,
    resolve,
    score_items,
    texts_of,
)
from rewardserve.service.errors import InvalidArgument

from rewardserve.activations import probabilities
from rewardserve.enums import Truncation
from rewardserve.formatting import TextItem

CLASSIFY = "POST /classify"
V1_CLASSIFY = "POST /v1/classify"
MODELS = "GET /v1/models"


def truncation_of(body: dict, max_length: int) -> Truncation | None:
    """vLLM's ``truncate_prompt_tokens`` as a truncation side (None: the model's own)."""
    k = optional(body, "truncate_prompt_tokens", int, None)
    if k is None:
        return None
    if k == -1 or k == max_length:
        return Truncation.left  # vLLM keeps the last k tokens
    raise InvalidArgument(f"truncate_prompt_tokens: {k} is not supported; use -1 or the model's max_length "
                          f"({max_length})")


def items_of(body: dict, max_items: int) -> tuple[list, str]:
    """The items a classify request carries (``input`` texts or one ``messages`` chat) and their field."""
    has_input, has_messages = body.get("input") is not None, body.get("messages") is not None
    if has_input == has_messages:
        raise InvalidArgument("input: exactly one of 'input' (a string or list of strings) or 'messages' is required")
    if has_input:
        return [TextItem(t) for t in texts_of(body["input"], "input", max_items)], "input[{}]"
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise InvalidArgument("messages: expected a non-empty list of {role, content}")
    return [item_from_obj(messages, "messages")], "messages"


def classify_response(model, name: str, scores, activate: bool) -> dict:
    """vLLM's ``ClassificationResponse`` for the scores of one request."""
    data = []
    for i, s in enumerate(scores):
        labels, logits = outputs(model, s)
        probs = [float(p) for p in probabilities([logits])[0]] if activate else logits
        best = max(range(len(probs)), key=probs.__getitem__)
        data.append({"index": i, "label": labels[best], "probs": probs, "num_classes": len(probs)})
    tokens = sum(s.num_tokens for s in scores)
    return {"id": f"classify-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()), "model": name,
            "data": data, "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0,
                                    "prompt_tokens_details": None}}


class VllmRoutes:
    """``/classify``, ``/v1/classify`` and ``/v1/models`` over the server's registry and batchers."""

    def __init__(self, servicer, config, metrics):
        self.servicer, self.config, self.metrics = servicer, config, metrics

    async def _classify(self, request: web.Request) -> web.Response:
        body = request[BODY]
        if not isinstance(body, dict):
            raise InvalidArgument(f"body: expected a JSON object with 'input' or 'messages', got {type(body).__name__}")
        name = optional(body, "model", str, "")
        activate = optional(body, "use_activation", bool, True)
        items, where = items_of(body, self.config.max_items_per_request)
        model = resolve(self, name)
        truncation = truncation_of(body, model.info.max_length)  # a composite: its shortest model's
        scores = await score_items(self, model, items, ScoreOptions(model=model.name, truncation=truncation),
                                   where.format)
        return web.json_response(classify_response(model, name or model.name, scores, activate))

    @http_route(CLASSIFY)
    async def classify(self, request: web.Request) -> web.Response:
        """vLLM's ``POST /classify``."""
        return await self._classify(request)

    @http_route(V1_CLASSIFY)
    async def v1_classify(self, request: web.Request) -> web.Response:
        """vLLM's and SGLang's ``POST /v1/classify`` (the same API)."""
        return await self._classify(request)

    @http_route(MODELS, reads_body=False)
    async def list_models(self, request: web.Request) -> web.Response:
        """OpenAI's model list: served models and composites, then aliases (``root`` = what they stand for)."""
        registry = self.servicer.models()
        created = int(time.time())
        entries = [{"id": i.name, "object": "model", "created": created, "owned_by": "rewardserve", "root": i.name,
                    "max_model_len": i.max_length or None} for i in registry.infos()]
        entries += [{"id": alias, "object": "model", "created": created, "owned_by": "rewardserve", "root": name,
                     "max_model_len": None} for alias, name in self.config.model_aliases]
        return web.json_response({"object": "list", "data": entries})

    def add_to(self, app: web.Application) -> None:
        """Register the routes."""
        app.router.add_post("/classify", self.classify)
        app.router.add_post("/v1/classify", self.v1_classify)
        app.router.add_get("/v1/models", self.list_models)
