"""Logits -> probabilities and rewards: once per batch in the inference worker, then per request.

:func:`batch_rows` runs in the worker thread right after the backend, vectorised over the whole
batch, and leaves plain Python floats; :func:`to_scores` (on the event loop, per request) only
applies the request's normalisation and pairs each row with its item's token counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rewardserve.service.domain import Encoded, ItemScore

from rewardserve.activations import probabilities
from rewardserve.bundle import RewardSpec


@dataclass(frozen=True, slots=True)
class Row:
    """One item's outputs, computed with its batch: the logits, their probabilities, the raw reward logit."""

    logits: tuple[float, ...]
    probabilities: tuple[float, ...]
    reward: float


def rewards(logits: np.ndarray, spec: RewardSpec, normalize: bool) -> np.ndarray:
    """The reward of each row: the reward label's logit, standardised if asked."""
    raw = np.asarray(logits, np.float64)[:, spec.reward_index]
    return spec.normalize(raw) if normalize else raw  # the contract's one definition


def batch_rows(logits: np.ndarray, spec: RewardSpec) -> list[Row]:
    """One :class:`Row` per row of a batch's ``logits`` (float32 logits, float64 probabilities)."""
    logits = np.asarray(logits)
    index = spec.reward_index
    return [Row(tuple(row), tuple(probs), row[index])
            for row, probs in zip(logits.tolist(), probabilities(logits).tolist(), strict=True)]


def to_scores(rows: Sequence[Row], encoded: Sequence[Encoded], spec: RewardSpec, normalize: bool) -> list[ItemScore]:
    """Build one ItemScore per row (rows in the order of ``encoded``)."""
    return [
        ItemScore(logits=r.logits, probabilities=r.probabilities,
                  reward=spec.normalize(r.reward) if normalize else r.reward,
                  num_tokens=e.num_tokens, truncated=e.truncated)
        for r, e in zip(rows, encoded, strict=True)
    ]
