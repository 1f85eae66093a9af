"""text-embeddings-inference's ``POST /predict``, for TEI clients pointed at a reward model.

The request is TEI's ``PredictRequest``: ``inputs`` is a string, a pair ``[a, b]`` (scored as
prompt + response with the model's template), or a batch ``[[text], [a, b], ...]``;
``raw_scores`` (default false), ``truncate`` (default false: an input past ``max_length`` is
400, as TEI refuses it) and ``truncation_direction`` (``Right`` or ``Left``). The answer is a
list of ``{score, label}`` sorted by score, highest first (a list of such lists for a batch);
scores are the sigmoid for a one-label model, the softmax otherwise, the logits with
``raw_scores``::

    {"inputs": "<prompt + response>", "raw_scores": true}  ->  [{"score": 1.73, "label": "reward"}]
    {"inputs": [["a"], ["b"]]}  ->  [[{"score": 0.85, "label": "reward"}], [{"score": 0.31, "label": "reward"}]]
"""

from __future__ import annotations

from aiohttp import web
from rewardserve.service.domain import ScoreOptions
from rewardserve.service.edge.http_common import BODY, http_route, optional, outputs, resolve, score_items
from rewardserve.service.errors import InvalidArgument

from rewardserve.activations import probabilities
from rewardserve.enums import Truncation
from rewardserve.formatting import PairItem, TextItem

PREDICT = "POST /predict"
DIRECTIONS = {"right": Truncation.right, "left": Truncation.left}


def _sequence(value, where: str):
    if not isinstance(value, list) or len(value) not in (1, 2) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{where}: expected [text] or [text_a, text_b] (strings)")
    if not all(value):
        raise InvalidArgument(f"{where}: empty")
    return TextItem(value[0]) if len(value) == 1 else PairItem(value[0], value[1])


def inputs_of(value, max_items: int) -> tuple[list, bool]:
    """TEI's ``inputs`` as items, and whether it was a batch."""
    if isinstance(value, str):
        if not value:
            raise InvalidArgument("inputs: empty")
        return [TextItem(value)], False
    if not isinstance(value, list) or not value:
        raise InvalidArgument("inputs: expected a string, a pair [a, b] or a batch [[a], [a, b], ...]")
    if all(isinstance(v, str) for v in value):  # a single text or pair, as TEI reads it
        return [_sequence(value, "inputs")], False
    if len(value) > max_items:
        raise InvalidArgument(f"inputs: {len(value)} inputs, at most {max_items} per request (max_items_per_request)")
    return [_sequence(v, f"inputs[{i}]") for i, v in enumerate(value)], True


def predictions(model, score, raw: bool) -> list[dict]:
    """One input's ``[{score, label}, ...]``, highest score first."""
    labels, logits = outputs(model, score)
    values = logits if raw else [float(p) for p in probabilities([logits])[0]]
    return sorted(({"score": v, "label": lab} for v, lab in zip(values, labels, strict=True)),
                  key=lambda p: -p["score"])


class TeiRoutes:
    """``/predict`` over the server's registry and batchers (the model: ``?model=`` or ``http_model``)."""

    def __init__(self, servicer, config, metrics):
        self.servicer, self.config, self.metrics = servicer, config, metrics

    @http_route(PREDICT)
    async def predict(self, request: web.Request) -> web.Response:
        """TEI's ``POST /predict``."""
        body = request[BODY]
        if not isinstance(body, dict) or "inputs" not in body:
            raise InvalidArgument("inputs: missing (a JSON object with 'inputs' is required)")
        raw = optional(body, "raw_scores", bool, False)
        truncate = optional(body, "truncate", bool, False)
        direction = optional(body, "truncation_direction", str, "Right")
        if direction.lower() not in DIRECTIONS:
            raise InvalidArgument(f"truncation_direction: expected Right or Left, got {direction!r}")
        items, batch = inputs_of(body["inputs"], self.config.max_items_per_request)
        name = optional(body, "model", str, "") or request.query.get("model", "")
        model = resolve(self, name)
        truncation = DIRECTIONS[direction.lower()] if truncate else Truncation.error
        scores = await score_items(self, model, items, ScoreOptions(model=model.name, truncation=truncation),
                                   "inputs[{}]".format if batch else (lambda _: "inputs"))
        result = [predictions(model, s, raw) for s in scores]
        return web.json_response(result if batch else result[0])

    def add_to(self, app: web.Application) -> None:
        """Register the route."""
        app.router.add_post("/predict", self.predict)
