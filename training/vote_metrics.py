"""How well predicted class probabilities match the labellers' vote distribution.

For a classifier trained on texts that several people labelled, accuracy against the majority
label says nothing about whether P(toxic) = 0.7 means "7 in 10 labellers would call it toxic".
These metrics compare the predicted distribution with the vote shares, item by item:

* ``vote_ece``: for each class c, 15 equal-width bins of P(c); in each bin, |mean P(c) - mean
  vote share of c|, weighted by the bin's share of items; then the mean over classes (for two
  classes both give the same figure up to items exactly on a bin edge);
* ``vote_brier``: mean over items of sum_c (P(c) - share(c))^2 (Brier's multi-class form; for
  two classes twice the binary (P - share)^2);
* ``vote_correlation``: Pearson correlation between P(c) and share(c) over the items, per class
  (for two classes the same for both).
"""

from __future__ import annotations

from typing import Any

import numpy as np

ECE_BINS = 15


def binned_calibration_error(probs: np.ndarray, shares: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE of one class against vote shares: bins of equal width over [0, 1] (1.0 in the last bin)."""
    which = np.minimum((probs * bins).astype(int), bins - 1)
    err = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            err += m.mean() * abs(probs[m].mean() - shares[m].mean())
    return float(err)


def vote_metrics(probs: np.ndarray, shares: np.ndarray, names: list[str]) -> dict[str, Any]:
    """ECE, Brier score and correlation of predicted probabilities [N, K] against vote shares [N, K]."""
    if probs.shape != shares.shape:
        raise ValueError(f"probabilities {probs.shape} and vote shares {shares.shape} differ in shape")
    per_class_ece = {n: binned_calibration_error(probs[:, i], shares[:, i]) for i, n in enumerate(names)}
    corr = {}
    for i, n in enumerate(names):
        p, s = probs[:, i], shares[:, i]
        corr[n] = float(np.corrcoef(p, s)[0, 1]) if p.std() > 0 and s.std() > 0 else float("nan")
    return {
        "vote_ece": float(np.mean(list(per_class_ece.values()))),
        "vote_ece_per_class": per_class_ece,
        "vote_ece_bins": ECE_BINS,
        "vote_brier": float(((probs - shares) ** 2).sum(-1).mean()),
        "vote_correlation": corr,
        "mean_vote_share_of_majority": float(shares.max(-1).mean()),
    }
