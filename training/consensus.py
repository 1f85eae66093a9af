"""From several labellers' judgements to training pairs, and to one consensus ranking per prompt.

Per pair of texts (i, j) of an item, the votes are a = judgements ranking i above j, b = the
reverse (ties count for neither), and the vote share is p = a / (a + b). ``consensus``:

* ``hard``: the majority side as a 0/1 label; 50/50 splits are dropped and counted;
* ``weighted``: the same pairs, each pair's loss weighted by its majority share max(p, 1-p)
  (0.5 < w <= 1), so a 2-1 split counts two thirds of a unanimous pair;
* ``soft``: every pair with at least one decisive vote, 50/50 splits included, trained with the
  soft Bradley-Terry loss ``-(p log s(d) + (1-p) log s(-d))`` against its vote share.

How it combines with the rest of training: ``margin`` (a per-record field) shifts d = r_i - r_j
- margin for hard and weighted pairs as for single-labeller pairs; with ``soft`` a record with a
non-zero margin is refused (``file:line``), since the vote share already sets the strength. With
``--ranking-mode per_prompt`` an item's pairs stay in one group (loss averaged per prompt, each
text scored once); with ``pairs`` each becomes its own group. Pairs every labeller tied give no
training pair in any mode.

The consensus ranking of an item is the Bradley-Terry maximum-likelihood fit of scores s over
all labellers' pairwise judgements, with a prior of ``prior`` pseudo-votes split evenly between
the two sides of every pair (0.5 each way by default; ties count as half a win each way): unanimous
data then gives finite scores, e.g. for two texts and n votes to none s_1 - s_2 = log((n + 0.5) / 0.5).
Borda counts (per judgement, the texts ranked below plus half the ties) are reported beside it as a check.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from rewardserve.training.groups import PreferenceGroup
from rewardserve.training.judgements import JudgedItem
from rewardserve.training.records import LoadReport

DEFAULT_PRIOR = 1.0  # pseudo-votes per pair, split evenly: 0.5 for each side


def pair_votes(item: JudgedItem) -> list[tuple[int, int, int, int, int]]:
    """(i, j, votes for i, votes for j, ties) for every pair i < j of the item's texts."""
    out = []
    for i, j in itertools.combinations(range(len(item.texts)), 2):
        a = sum(1 for g in item.judgements if g.ranks[i] < g.ranks[j])
        b = sum(1 for g in item.judgements if g.ranks[j] < g.ranks[i])
        out.append((i, j, a, b, len(item.judgements) - a - b))
    return out


def consensus_groups(items: list[JudgedItem], consensus, report: LoadReport) -> list[PreferenceGroup]:
    """One preference group per item, its pairs chosen and weighted as ``consensus`` says."""
    mode = str(getattr(consensus, "value", consensus))
    if mode not in ("hard", "weighted", "soft"):
        raise ValueError(f"consensus must be hard, weighted or soft, got {mode!r}")
    groups = []
    for item in items:
        pairs, targets, weights = [], [], []
        for i, j, a, b, _ in pair_votes(item):
            if a + b == 0:
                report.skipped["pairs every labeller tied (no preference)"] += 1
                continue
            if a == b and mode != "soft":
                report.skipped["50/50 splits (no majority)"] += 1
                continue
            better, worse, share = (i, j, a / (a + b)) if a >= b else (j, i, b / (a + b))
            pairs.append((better, worse))
            targets.append(share if mode == "soft" else 1.0)
            weights.append(share if mode == "weighted" else 1.0)
        if pairs:
            report.notes[f"judged items turned into pairs ({mode} consensus)"] += 1
            groups.append(PreferenceGroup(item.texts, tuple(pairs), (item.margin,) * len(pairs),
                                          tuple(targets), tuple(weights)))
    return groups


def win_matrix(item: JudgedItem) -> np.ndarray:
    """W[i, j] = judgements ranking i above j, plus half of those tying them."""
    n = len(item.texts)
    w = np.zeros((n, n))
    for i, j, a, b, t in pair_votes(item):
        w[i, j], w[j, i] = a + t / 2, b + t / 2
    return w


def bradley_terry_scores(wins: np.ndarray, prior: float = DEFAULT_PRIOR) -> np.ndarray:
    """Maximum-likelihood Bradley-Terry scores (mean zero) from a win matrix, with pseudo-votes.

    ``prior`` pseudo-votes per pair are added, half to each side, which keeps the likelihood
    bounded when one text wins every comparison. Solved by MM iterations (Hunter 2004), which
    increase the likelihood at every step.
    """
    if prior <= 0:
        raise ValueError(f"prior must be > 0 pseudo-votes, got {prior}")
    n = len(wins)
    w = wins + (prior / 2) * (1 - np.eye(n))
    games = w + w.T
    strength = np.ones(n)
    for _ in range(10_000):
        denom = (games / (strength[:, None] + strength[None, :])).sum(1)
        new = w.sum(1) / denom
        new /= np.exp(np.log(new).mean())
        if np.max(np.abs(np.log(new) - np.log(strength))) < 1e-12:
            strength = new
            break
        strength = new
    s = np.log(strength)
    return s - s.mean()


def borda_scores(item: JudgedItem) -> np.ndarray:
    """Per text: over all judgements, the texts ranked below it plus half the texts tied with it."""
    n = len(item.texts)
    out = np.zeros(n)
    for g in item.judgements:
        r = np.array(g.ranks)
        for i in range(n):
            out[i] += (r > r[i]).sum() + 0.5 * ((r == r[i]).sum() - 1)
    return out


def ranks_from_scores(scores: np.ndarray, tol: float = 1e-6) -> tuple[int, ...]:
    """1 = best; texts within ``tol`` of each other share a rank (competition ranking: 1, 2, 2, 4)."""
    return tuple(int(1 + (scores > s + tol).sum()) for s in scores)


@dataclass(frozen=True)
class ConsensusRanking:
    """An item's consensus: Bradley-Terry scores and ranks, Borda's, and whether the two agree."""

    scores: tuple[float, ...]
    ranks: tuple[int, ...]
    borda: tuple[float, ...]
    borda_ranks: tuple[int, ...]

    @property
    def borda_agrees(self) -> bool:
        """Whether Borda gives the same ranking (ties included)."""
        return self.ranks == self.borda_ranks


def consensus_ranking(item: JudgedItem, prior: float = DEFAULT_PRIOR) -> ConsensusRanking:
    """The item's consensus ranking by Bradley-Terry maximum likelihood, with Borda as a check."""
    s = bradley_terry_scores(win_matrix(item), prior)
    b = borda_scores(item)
    return ConsensusRanking(tuple(float(x) for x in s), ranks_from_scores(s),
                            tuple(float(x) for x in b), ranks_from_scores(b))
