"""Logits -> probabilities and rewards, vectorised over the items of one request."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rewardserve.service.domain import Encoded, ItemScore

from rewardserve.activations import probabilities
from rewardserve.bundle import RewardSpec


def rewards(logits: np.ndarray, spec: RewardSpec, normalize: bool) -> np.ndarray:
    """The reward of each row: the reward label's logit, standardised if asked."""
    raw = np.asarray(logits, np.float64)[:, spec.reward_index]
    return spec.normalize(raw) if normalize else raw  # the contract's one definition


def to_scores(logits: np.ndarray, encoded: Sequence[Encoded], spec: RewardSpec, normalize: bool) -> list[ItemScore]:
    """Build one ItemScore per row of ``logits`` (rows in the order of ``encoded``)."""
    probs = probabilities(logits)
    rew = rewards(logits, spec, normalize)
    return [
        ItemScore(
            logits=tuple(float(x) for x in logits[i]),
            probabilities=tuple(float(x) for x in probs[i]),
            reward=float(rew[i]),
            num_tokens=e.num_tokens,
            truncated=e.truncated,
        )
        for i, e in enumerate(encoded)
    ]
