"""TRL reward functions served by rewardserve: what ``RewardClient.as_reward_func`` returns.

TRL's GRPOTrainer (and its other online trainers) call each entry of ``reward_funcs`` as
``f(prompts=..., completions=..., completion_ids=..., **dataset_columns)`` and expect one float
(or None) per completion. Two formats arrive:

* standard: ``prompts`` and ``completions`` are strings -> ``pair`` items (the model's
  prompt/response template joins them);
* conversational: ``prompts`` are lists of ``{"role", "content"}`` messages and each completion
  is a list holding the generated assistant message -> ``conversation`` items (prompt + completion).

Each call is ONE Score request for the whole batch (plus, with a penalty model, one more sent
concurrently): the server's batcher does the rest.

Example::

    client = RewardClient("127.0.0.1:50051")
    reward = client.as_reward_func(model="hh", penalty_model="toxicity", penalty_label="toxic",
                                   penalty_weight=0.5)       # r_hh - 0.5 * P(toxic)
    GRPOTrainer(model=policy, reward_funcs=[reward], args=GRPOConfig(...), train_dataset=prompts)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from rewardserve.service.domain import ModelInfo, ScoreResult, item_from_obj

from rewardserve.enums import Truncation
from rewardserve.formatting import Item, PairItem, TextItem


class Scorer(Protocol):
    """What a reward function needs of a client (:class:`~rewardserve.service.client.RewardClient` has it)."""

    def score(self, items: Sequence[Any], *, model: str = "", truncation: Truncation | str | None = None,
              normalize: bool = False, timeout_s: float | None = None) -> ScoreResult: ...

    def get_model(self, name: str = "", timeout_s: float | None = None) -> ModelInfo: ...


@dataclass(frozen=True)
class Penalty:
    """Subtract ``weight`` x P(``label``) of the completion under the classifier ``model``.

    ``label=None`` means "anything but the model's reward label": 1 - P(reward_label).
    """

    model: str
    label: str | None = None
    weight: float = 1.0


def reward_items(prompts: Sequence[Any], completions: Sequence[Any]) -> list[Item | None]:
    """One item per (prompt, completion) as TRL passes them; None for an empty completion."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    items: list[Item | None] = []
    for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
        if not completion_text(completion):
            items.append(None)  # the server refuses empty responses; see RewardFunc.empty_reward
        elif isinstance(completion, str):
            if not isinstance(prompt, str):
                raise ValueError(f"prompts[{i}]: a string completion needs a string prompt, got {type(prompt).__name__}")
            items.append(PairItem(prompt, completion))
        else:
            head = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
            items.append(item_from_obj(head + list(completion), f"prompts[{i}] + completions[{i}]"))
    return items


def completion_text(completion: Any) -> str:
    """The generated text alone: the string, or the completion messages' contents joined."""
    if isinstance(completion, str):
        return completion
    return "\n".join(str(m.get("content") or "") for m in completion if m.get("content"))


class RewardFunc:
    """A TRL reward function: ``f(prompts, completions, **kwargs) -> list[float | None]``.

    Build it with :meth:`service.client.RewardClient.as_reward_func`. ``__name__`` is what TRL
    logs the reward under (``rewards/<name>/mean``).
    """

    def __init__(self, client: Scorer, model: str = "", *, normalize: bool = False,
                 truncation: Truncation | str | None = None, penalty: Penalty | None = None,
                 empty_reward: float | None = None, name: str | None = None, timeout_s: float | None = None):
        self.client = client
        self.model = model
        self.normalize = normalize
        self.truncation = truncation
        self.penalty = penalty
        self.empty_reward = empty_reward  # None: TRL records NaN for it
        self.timeout_s = timeout_s
        suffix = f"_minus_{penalty.model}" if penalty is not None else ""
        self.__name__ = name or f"rewardserve_{model or 'default'}{suffix}"
        self._penalty_index: Callable[[Sequence[float]], float] | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="rewardserve-penalty") if penalty else None

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        """Score every completion in one request; extra TRL keyword arguments are ignored."""
        items = reward_items(prompts, completions)
        keep = [i for i, item in enumerate(items) if item is not None]
        out: list[float | None] = [self.empty_reward] * len(items)
        if not keep:
            return out
        pending = None
        if self.penalty is not None:  # concurrent with the main request
            texts = [TextItem(completion_text(completions[i])) for i in keep]
            pending = self._pool.submit(self._penalty_probs, texts)
        result = self.client.score([items[i] for i in keep], model=self.model, normalize=self.normalize,
                                   truncation=self.truncation, timeout_s=self.timeout_s)
        rewards = [s.reward for s in result.scores]
        if pending is not None:
            probs = pending.result()
            rewards = [r - self.penalty.weight * p for r, p in zip(rewards, probs, strict=True)]
            log_metric = kwargs.get("log_metric")
            if callable(log_metric):  # TRL >= 0.2x: averaged per logging step next to the reward
                log_metric(f"{self.__name__}/penalty_prob", sum(probs) / len(probs))
        for i, r in zip(keep, rewards, strict=True):
            out[i] = r
        return out

    def _penalty_probs(self, texts: list[TextItem]) -> list[float]:
        penalty = self.penalty
        if self._penalty_index is None:  # once: which probability is the penalty
            self._penalty_index = label_prob(self.client.get_model(penalty.model, self.timeout_s), penalty.label)
        result = self.client.score(texts, model=penalty.model, timeout_s=self.timeout_s)
        return [self._penalty_index(s.probabilities) for s in result.scores]

    def close(self) -> None:
        """Stop the penalty thread (the client stays open)."""
        if self._pool is not None:
            self._pool.shutdown()


def label_prob(info: ModelInfo, label: str | None) -> Callable[[Sequence[float]], float]:
    """How to read P(``label``) from a classifier's probabilities (None: 1 - P(reward label)).

    Shared by the reward-function penalty and ``rewardserve filter``; errors name the labels.
    """
    if info.kind != "classifier" or len(info.labels) < 2:
        raise ValueError(f"model {info.name!r} is {info.kind} with labels {list(info.labels)}: "
                         "a label probability needs a classifier")
    if label is None:
        return lambda probs: 1.0 - probs[info.reward_index]
    if label not in info.labels:
        raise ValueError(f"label {label!r} is not a label of {info.name!r}: {list(info.labels)}")
    index = info.labels.index(label)
    return lambda probs: probs[index]


def label_name(info: ModelInfo, label: str | None) -> str:
    """How to print the probability :func:`label_prob` reads: the label, or the labels but the reward one."""
    return label or "|".join(x for x in info.labels if x != info.reward_label)
