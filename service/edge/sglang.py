"""SGLang's embeddings route as verl's reward loop uses it for reward models.

``POST /v1/embeddings`` with ``{"model", "input"}`` (a string or a list of strings) answers
OpenAI's embedding list; each ``embedding`` is the model's raw logits with the reward logit
last (appended when it is not the last label), so verl's ``data[-1].embedding[-1]`` is the
reward. A composite's embedding is its one total. Other OpenAI keys (``encoding_format``,
``dimensions``, ``user``) are ignored; token-id input is 400::

    {"model": "/models/Skywork-RM", "input": "<prompt + response>"}
 -> {"object": "list", "model": "/models/Skywork-RM",
     "data": [{"object": "embedding", "index": 0, "embedding": [1.73]}],
     "usage": {"prompt_tokens": 12, "total_tokens": 12}}
"""

from __future__ import annotations

from aiohttp import web
from rewardserve.service.domain import ScoreOptions
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

from rewardserve.formatting import TextItem

EMBEDDINGS = "POST /v1/embeddings"


def reward_last(model, score) -> list[float]:
    """The raw outputs with the reward logit last (appended if another label is last)."""
    _, values = outputs(model, score)
    index = model.spec.reward_index if score.logits else 0
    return values if index == len(values) - 1 else values + [values[index]]


class SglangRoutes:
    """``/v1/embeddings`` over the server's registry and batchers."""

    def __init__(self, servicer, config, metrics):
        self.servicer, self.config, self.metrics = servicer, config, metrics

    @http_route(EMBEDDINGS)
    async def embeddings(self, request: web.Request) -> web.Response:
        """SGLang's ``POST /v1/embeddings`` for a reward model: logits, reward last."""
        body = request[BODY]
        if not isinstance(body, dict):
            raise InvalidArgument(f"body: expected a JSON object with 'input', got {type(body).__name__}")
        if body.get("input") is None:
            raise InvalidArgument("input: missing (a string or a list of strings)")
        name = optional(body, "model", str, "")
        texts = texts_of(body["input"], "input", self.config.max_items_per_request)
        model = resolve(self, name)
        scores = await score_items(self, model, [TextItem(t) for t in texts], ScoreOptions(model=model.name),
                                   "input[{}]".format)
        tokens = sum(s.num_tokens for s in scores)
        return web.json_response({
            "object": "list", "model": name or model.name,
            "data": [{"object": "embedding", "index": i, "embedding": reward_last(model, s)} for i, s in enumerate(scores)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })

    def add_to(self, app: web.Application) -> None:
        """Register the route."""
        app.router.add_post("/v1/embeddings", self.embeddings)
