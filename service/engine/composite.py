"""A composite reward served like a model: its recipe's models score each item concurrently.

The recipe (:class:`service.recipes.CompositeSpec`) is checked against the loaded models once, at
startup; each request then scores its items with every model the recipe uses, each through its
own batcher (so composite and direct requests share batches), and adds up the weighted parts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from rewardserve.service.domain import ItemScore, ModelInfo, RewardPart, ScoreOptions
from rewardserve.service.recipes import CompositeSpec

from rewardserve.bundle import RewardSpec
from rewardserve.formatting import Item
from rewardserve.manifest import VariantInfo


class Scorer(Protocol):
    """What a composite needs of each model it adds up (a :class:`~.models.ScoringModel` has it)."""

    spec: RewardSpec
    variant: VariantInfo

    async def score(self, items: Sequence[Item], options: ScoreOptions, deadline: float,
                    name_of: Callable[[int], str] = ...) -> list[ItemScore]: ...

logger = logging.getLogger(__name__)

KIND = "composite"


class CompositeModel:
    """A named weighted sum of served models' rewards and label probabilities.

    Example::

        safe = CompositeModel(CompositeSpec.parse("safe", "hh - 0.5*toxicity:toxic"), registry.models)
        scores = await safe.score([PairItem("Hi", "Hello!")], ScoreOptions(), deadline)
        scores[0].reward, scores[0].parts
    """

    def __init__(self, spec: CompositeSpec, models: Mapping[str, Scorer]):
        self.spec = spec
        self.name = spec.name
        self.models = {}
        self._reads: list[int | None] = []  # per term: index into probabilities, or None for the reward
        for term in spec.terms:
            where = f"composites: recipe {spec.name!r}"
            model = models.get(term.model)
            if model is None:
                raise ValueError(f"{where}: model {term.model!r} is not loaded (loaded: {sorted(models)})")
            labels = model.spec.labels
            if term.label and term.label not in labels:
                raise ValueError(f"{where}: model {term.model!r} has no label {term.label!r} (labels: {labels})")
            self.models[term.model] = model
            self._reads.append(labels.index(term.label) if term.label else None)

    @property
    def info(self) -> ModelInfo:
        """Kind ``composite``, the recipe's terms; limits are those of its strictest model."""
        parts = list(self.models.values())
        return ModelInfo(
            name=self.name, kind=KIND, labels=(), reward_label="", reward_index=0,
            max_length=min(m.spec.max_length for m in parts), truncation_side="", text_format="",
            precision="", execution_provider="", parity_passed=all(m.variant.passed for m in parts),
            normalization=None, model_type=KIND, terms=self.spec.terms,
        )

    def raw_reward(self, score: ItemScore) -> float:
        """The score Compare puts in Bradley-Terry: the composite's total."""
        return score.reward

    async def score(self, items: Sequence[Item], options: ScoreOptions, deadline: float,
                    name_of: Callable[[int], str] = "items[{}]".format) -> list[ItemScore]:
        """Score items with every model of the recipe at once; return totals with their parts."""
        names = list(self.models)
        tasks = [asyncio.ensure_future(self.models[n].score(items, options, deadline, name_of)) for n in names]
        try:
            results = dict(zip(names, await asyncio.gather(*tasks), strict=True))
        except BaseException:
            for t in tasks:  # one part failed (or the call was cancelled): drop the others' work
                t.cancel()
            raise
        out = []
        for i in range(len(items)):
            parts = tuple(
                RewardPart(t.model, t.label, t.weight,
                           results[t.model][i].reward if read is None else results[t.model][i].probabilities[read])
                for t, read in zip(self.spec.terms, self._reads, strict=True)
            )
            per_model = [results[n][i] for n in names]
            out.append(ItemScore(
                logits=(), probabilities=(), reward=sum(p.weight * p.value for p in parts),
                num_tokens=max(s.num_tokens for s in per_model), truncated=any(s.truncated for s in per_model),
                parts=parts,
            ))
        return out


def build_composites(specs: Sequence[CompositeSpec], models: Mapping[str, Scorer],
                     failed: Mapping[str, str]) -> tuple[dict[str, CompositeModel], dict[str, str]]:
    """Check every recipe against the loaded models; raise ValueError naming the bad recipe.

    Returns the composites and, for recipes that use a model that failed to load (and was
    skipped), why they are not served.
    """
    out, skipped = {}, {}
    for spec in specs:
        lost = [m for m in spec.models if m in failed]
        if lost:
            skipped[spec.name] = f"composite {spec.name!r}: model {lost[0]!r} failed to load"
            logger.error("%s; composite skipped", skipped[spec.name])
            continue
        out[spec.name] = CompositeModel(spec, models)
        logger.info("composite %s = %s", spec.name, spec.describe())
    return out, skipped
