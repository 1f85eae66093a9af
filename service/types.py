"""Domain types of the service and their protobuf conversions: the only module using ``*_pb2``.

The servicer calls ``*_from_pb`` on requests and ``*_to_pb`` on results; the client does the
reverse. Everything between (models, batcher, runner) sees only these frozen dataclasses.
Request validation lives here too, and names the field and item index
(``items[3].text: empty``).

Example::

    req = ScoreRequest(items=(TextItem("hello"),), options=ScoreOptions(normalize=True))
    req.validate(max_items=1024)
    score_request_from_pb(score_request_to_pb(req), max_items=1024) == req  # True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from google.protobuf import unknown_fields
from rewardserve.service.errors import InvalidArgument
from rewardserve.service.recipes import CompositeTerm

from rewardserve.enums import Truncation
from rewardserve.formatting import ROLES, ChatItem, Item, Message, PairItem, TextItem
from rewardserve.v1 import reward_pb2 as pb

_TRUNC_FROM_PB = {
    pb.TRUNCATION_MODE_UNSPECIFIED: None,
    pb.TRUNCATION_MODE_LEFT: Truncation.left,
    pb.TRUNCATION_MODE_RIGHT: Truncation.right,
    pb.TRUNCATION_MODE_ERROR: Truncation.error,
}
_TRUNC_TO_PB = {v: k for k, v in _TRUNC_FROM_PB.items()}


@dataclass(frozen=True)
class ScoreOptions:
    """Per-request options: model (empty: default), truncation (None: the model's), normalise."""

    model: str = ""
    truncation: Truncation | None = None
    normalize: bool = False


@dataclass(frozen=True)
class ScoreRequest:
    """Items to score with one model."""

    items: tuple[Item, ...]
    options: ScoreOptions = field(default_factory=ScoreOptions)
    request_id: str = ""

    def validate(self, max_items: int) -> None:
        """Raise InvalidArgument naming the first bad field."""
        validate_items(self.items, max_items)


@dataclass(frozen=True)
class RewardPart:
    """One term of a composite reward for one item: ``value`` is unweighted (P(label) or the reward)."""

    model: str
    label: str
    weight: float
    value: float


@dataclass(frozen=True)
class ItemScore:
    """One item's result: all logits, probabilities, the reward, token count, truncation.

    A composite's score has no logits or probabilities: its reward is the sum of its ``parts``
    (weight x value), ``num_tokens`` the longest part's, ``truncated`` whether any part was.
    """

    logits: tuple[float, ...]
    probabilities: tuple[float, ...]
    reward: float
    num_tokens: int
    truncated: bool
    parts: tuple[RewardPart, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class ScoreResult:
    """The scores of one request, in item order."""

    scores: tuple[ItemScore, ...]
    model: str
    request_id: str = ""


@dataclass(frozen=True)
class CompareRequest:
    """Pairs of responses to one prompt."""

    prompt: str
    pairs: tuple[tuple[str, str], ...]
    options: ScoreOptions = field(default_factory=ScoreOptions)

    def validate(self, max_items: int) -> None:
        """Raise InvalidArgument naming the first bad field (each pair is two items)."""
        if not self.pairs:
            raise InvalidArgument("pairs: empty")
        if 2 * len(self.pairs) > max_items:
            raise InvalidArgument(f"pairs: {len(self.pairs)} pairs, at most {max_items // 2} per request")
        for i, (a, b) in enumerate(self.pairs):
            for name, text in (("response_a", a), ("response_b", b)):
                if not text:
                    raise InvalidArgument(f"pairs[{i}].{name}: empty")

    def items(self) -> tuple[PairItem, ...]:
        """Return the 2N items to score: a0, b0, a1, b1, ..."""
        return tuple(PairItem(self.prompt, r) for pair in self.pairs for r in pair)


@dataclass(frozen=True)
class PairComparison:
    """Both rewards and the Bradley-Terry probability that a is preferred."""

    reward_a: float
    reward_b: float
    prob_a_preferred: float


@dataclass(frozen=True)
class CompareResult:
    """One comparison per pair, in order."""

    comparisons: tuple[PairComparison, ...]
    model: str


@dataclass(frozen=True)
class ModelInfo:
    """What a served model is and how it runs."""

    name: str
    kind: str
    labels: tuple[str, ...]
    reward_label: str
    reward_index: int
    max_length: int
    truncation_side: str
    text_format: str
    precision: str
    execution_provider: str
    parity_passed: bool
    normalization: tuple[float, float] | None  # (mean, std)
    model_type: str
    terms: tuple[CompositeTerm, ...] = ()  # a composite's recipe (kind "composite")


# ------------------------------------------------------------------ validation
def validate_items(items: Sequence[Item], max_items: int) -> None:
    """Raise InvalidArgument for an empty or too long list or an empty item."""
    if not items:
        raise InvalidArgument("items: empty")
    if len(items) > max_items:
        raise InvalidArgument(f"items: {len(items)} items, at most {max_items} per request")
    for i, item in enumerate(items):
        if isinstance(item, TextItem) and not item.text:
            raise InvalidArgument(f"items[{i}].text: empty")
        if isinstance(item, PairItem) and not item.response:
            raise InvalidArgument(f"items[{i}].pair.response: empty")
        if isinstance(item, ChatItem):
            if not item.messages:
                raise InvalidArgument(f"items[{i}].conversation.messages: empty")
            for j, m in enumerate(item.messages):
                if m.role not in ROLES:
                    raise InvalidArgument(
                        f"items[{i}].conversation.messages[{j}].role: must be one of {list(ROLES)}, got {m.role!r}"
                    )


def item_chars(item: Item) -> tuple[int, str]:
    """Characters in an item's texts, and what was counted (``text``, ``prompt + response``...)."""
    if isinstance(item, TextItem):
        return len(item.text), "text"
    if isinstance(item, PairItem):
        return len(item.prompt) + len(item.response), "prompt + response"
    return sum(len(m.content) for m in item.messages), "all message contents"


def check_text_chars(items: Sequence[Item], max_chars: int,
                     name_of: Callable[[int], str] = "items[{}]".format) -> None:
    """Raise InvalidArgument naming the first item with more than ``max_chars`` characters."""
    for i, item in enumerate(items):
        count, what = item_chars(item)
        if count > max_chars:
            raise InvalidArgument(f"{name_of(i)}: {count} characters ({what}), at most {max_chars} per item "
                                  "(max_text_chars)")


def item_from_obj(obj: Any, where: str = "item") -> Item:
    """Build an item from ``str``, ``(prompt, response)``, a message list or a JSON object."""
    if isinstance(obj, (TextItem, PairItem, ChatItem)):
        return obj
    if isinstance(obj, str):
        return TextItem(obj)
    if isinstance(obj, tuple) and len(obj) == 2:
        return PairItem(str(obj[0]), str(obj[1]))
    if isinstance(obj, list):
        return ChatItem(tuple(_message(m, f"{where}[{j}]") for j, m in enumerate(obj)))
    if isinstance(obj, Mapping):
        forms = [k for k in ("text", "response", "messages") if k in obj]
        if len(forms) != 1:
            raise InvalidArgument(f"{where}: needs exactly one of 'text', 'prompt'+'response' or 'messages'")
        if forms == ["text"]:
            return TextItem(_str(obj["text"], f"{where}.text"))
        if forms == ["response"]:
            return PairItem(_str(obj.get("prompt", ""), f"{where}.prompt"), _str(obj["response"], f"{where}.response"))
        if not isinstance(obj["messages"], list):
            raise InvalidArgument(f"{where}.messages: must be a list of {{role, content}}")
        return ChatItem(tuple(_message(m, f"{where}.messages[{j}]") for j, m in enumerate(obj["messages"])))
    raise InvalidArgument(f"{where}: unsupported item {type(obj).__name__}")


def item_to_obj(item: Item) -> dict[str, Any]:
    """Return the JSON form of an item (inverse of :func:`item_from_obj`)."""
    if isinstance(item, TextItem):
        return {"text": item.text}
    if isinstance(item, PairItem):
        return {"prompt": item.prompt, "response": item.response}
    return {"messages": [{"role": m.role, "content": m.content} for m in item.messages]}


def _message(m: Any, where: str) -> Message:
    if isinstance(m, Message):
        return m
    if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
        raise InvalidArgument(f"{where}: must be an object with 'role' and 'content'")
    return Message(_str(m["role"], f"{where}.role"), _str(m["content"], f"{where}.content"))


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{where}: must be a string, got {type(value).__name__}")
    return value


# ------------------------------------------------------------------ pb -> domain (server side)
def _options_from_pb(o: pb.ScoreOptions, where: str) -> ScoreOptions:
    unknown = [f.field_number for f in unknown_fields.UnknownFieldSet(o)]
    if unknown:
        raise InvalidArgument(f"{where}: unknown option (field number {unknown[0]})")
    if o.truncation not in _TRUNC_FROM_PB:
        raise InvalidArgument(f"{where}.truncation: unknown value {o.truncation}")
    return ScoreOptions(model=o.model, truncation=_TRUNC_FROM_PB[o.truncation], normalize=o.normalize)


def _item_from_pb(it: pb.Item, i: int) -> Item:
    kind = it.WhichOneof("input")
    if kind == "text":
        return TextItem(it.text)
    if kind == "pair":
        return PairItem(it.pair.prompt, it.pair.response)
    if kind == "conversation":
        return ChatItem(tuple(Message(m.role, m.content) for m in it.conversation.messages))
    raise InvalidArgument(f"items[{i}]: no input set (text, pair or conversation)")


def score_request_from_pb(req: pb.ScoreRequest, max_items: int) -> ScoreRequest:
    """Convert and validate a ScoreRequest."""
    if len(req.items) > max_items:  # before converting a huge list
        raise InvalidArgument(f"items: {len(req.items)} items, at most {max_items} per request")
    out = ScoreRequest(
        items=tuple(_item_from_pb(it, i) for i, it in enumerate(req.items)),
        options=_options_from_pb(req.options, "options"),
        request_id=req.request_id,
    )
    out.validate(max_items)
    return out


def compare_request_from_pb(req: pb.CompareRequest, max_items: int) -> CompareRequest:
    """Convert and validate a CompareRequest."""
    out = CompareRequest(
        prompt=req.prompt,
        pairs=tuple((p.response_a, p.response_b) for p in req.pairs),
        options=_options_from_pb(req.options, "options"),
    )
    out.validate(max_items)
    return out


# ------------------------------------------------------------------ domain -> pb (server side)
def _item_score_to_pb(s: ItemScore) -> pb.ItemScore:
    return pb.ItemScore(logits=s.logits, probabilities=s.probabilities, reward=s.reward,
                        num_tokens=s.num_tokens, truncated=s.truncated,
                        parts=[pb.RewardPart(**asdict(p)) for p in s.parts])


def score_result_to_pb(r: ScoreResult) -> pb.ScoreResponse:
    """Build a ScoreResponse."""
    return pb.ScoreResponse(scores=[_item_score_to_pb(s) for s in r.scores], model=r.model, request_id=r.request_id)


def compare_result_to_pb(r: CompareResult) -> pb.CompareResponse:
    """Build a CompareResponse."""
    return pb.CompareResponse(
        comparisons=[pb.PairComparison(**asdict(c)) for c in r.comparisons], model=r.model
    )


def model_info_to_pb(m: ModelInfo) -> pb.ModelInfo:
    """Build a ModelInfo message."""
    d = asdict(m)
    norm = d.pop("normalization")
    terms = [pb.CompositeTerm(**t) for t in d.pop("terms")]
    msg = pb.ModelInfo(**d, terms=terms)
    if norm is not None:
        msg.normalization.CopyFrom(pb.Normalization(mean=norm[0], std=norm[1]))
    return msg


def list_models_to_pb(models: Sequence[ModelInfo], default: str) -> pb.ListModelsResponse:
    """Build a ListModelsResponse."""
    return pb.ListModelsResponse(models=[model_info_to_pb(m) for m in models], default_model=default)


# ------------------------------------------------------------------ client side
def _options_to_pb(o: ScoreOptions) -> pb.ScoreOptions:
    return pb.ScoreOptions(model=o.model, truncation=_TRUNC_TO_PB[o.truncation], normalize=o.normalize)


def _item_to_pb(item: Item) -> pb.Item:
    if isinstance(item, TextItem):
        return pb.Item(text=item.text)
    if isinstance(item, PairItem):
        return pb.Item(pair=pb.PromptResponse(prompt=item.prompt, response=item.response))
    msgs = [pb.ChatMessage(role=m.role, content=m.content) for m in item.messages]
    return pb.Item(conversation=pb.Conversation(messages=msgs))


def score_request_to_pb(r: ScoreRequest) -> pb.ScoreRequest:
    """Build a ScoreRequest message."""
    return pb.ScoreRequest(items=[_item_to_pb(i) for i in r.items], options=_options_to_pb(r.options),
                           request_id=r.request_id)


def compare_request_to_pb(r: CompareRequest) -> pb.CompareRequest:
    """Build a CompareRequest message."""
    pairs = [pb.ResponsePair(response_a=a, response_b=b) for a, b in r.pairs]
    return pb.CompareRequest(prompt=r.prompt, pairs=pairs, options=_options_to_pb(r.options))


def score_result_from_pb(msg: pb.ScoreResponse) -> ScoreResult:
    """Convert a ScoreResponse."""
    scores = tuple(
        ItemScore(tuple(s.logits), tuple(s.probabilities), s.reward, s.num_tokens, s.truncated,
                  tuple(RewardPart(p.model, p.label, p.weight, p.value) for p in s.parts))
        for s in msg.scores
    )
    return ScoreResult(scores=scores, model=msg.model, request_id=msg.request_id)


def compare_result_from_pb(msg: pb.CompareResponse) -> CompareResult:
    """Convert a CompareResponse."""
    comps = tuple(PairComparison(c.reward_a, c.reward_b, c.prob_a_preferred) for c in msg.comparisons)
    return CompareResult(comparisons=comps, model=msg.model)


def model_info_from_pb(msg: pb.ModelInfo) -> ModelInfo:
    """Convert a ModelInfo message."""
    norm = (msg.normalization.mean, msg.normalization.std) if msg.HasField("normalization") else None
    return ModelInfo(
        name=msg.name, kind=msg.kind, labels=tuple(msg.labels), reward_label=msg.reward_label,
        reward_index=msg.reward_index, max_length=msg.max_length, truncation_side=msg.truncation_side,
        text_format=msg.text_format, precision=msg.precision, execution_provider=msg.execution_provider,
        parity_passed=msg.parity_passed, normalization=norm, model_type=msg.model_type,
        terms=tuple(CompositeTerm(t.model, t.weight, t.label) for t in msg.terms),
    )


def empty_list_models() -> pb.ListModelsRequest:
    """A ListModelsRequest (for clients)."""
    return pb.ListModelsRequest()


def get_model_request(name: str) -> pb.GetModelRequest:
    """A GetModelRequest (for clients)."""
    return pb.GetModelRequest(model=name)
