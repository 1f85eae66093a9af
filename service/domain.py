"""Domain types of the service: what every layer passes around, with no protobuf in sight.

The edge converts requests into these frozen dataclasses (``edge/convert.py``) and results back;
the client SDK does the reverse (``client/convert.py``). The engine and the backends see only
these. Request validation lives here too, and names the field and item index
(``items[3].text: empty``).

Example::

    req = ScoreRequest(items=(TextItem("hello"),), options=ScoreOptions(normalize=True))
    req.validate(max_items=1024)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from rewardserve.service.errors import InvalidArgument
from rewardserve.service.recipes import CompositeTerm

from rewardserve.agreement_summary import AgreementSummary
from rewardserve.enums import Truncation
from rewardserve.formatting import ROLES, ChatItem, Item, Message, PairItem, TextItem


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
    agreement: AgreementSummary | None = None  # how much the training data's labellers agreed (reward.json)


@dataclass(frozen=True)
class Encoded:
    """One tokenized item: ids, token type ids, and whether it was cut (what a backend runs)."""

    ids: np.ndarray  # int64 [num_tokens]
    type_ids: np.ndarray  # int64 [num_tokens]
    truncated: bool

    @property
    def num_tokens(self) -> int:
        """Tokens the model reads, special tokens included."""
        return len(self.ids)


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
