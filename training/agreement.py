"""How much labellers agree: per item and overall, for class votes and for preference judgements.

* **pairwise agreement**: per unit (a text's class votes, or one pair of texts' judgements), the
  share of pairs of judgements that give the same value, sum_c n_c (n_c - 1) / (n (n - 1)); the
  overall figure is the mean over units with at least two judgements (Fleiss' P-bar);
* **Krippendorff's alpha** (nominal), from the units' value counts by the ``krippendorff``
  package: 1 - observed / expected disagreement, so chance agreement scores 0;
* **Kendall's W** per ranking item with at least two labellers and three texts (midranks for
  ties, with the tie correction), then the mean over items;
* **outlier labellers** (only where labellers have ids): for every judgement of a pair, whether
  it disagrees with the majority of the *other* labellers of that pair (pairs where they tie are
  not counted); a labeller is flagged when their disagreement rate exceeds the median rate of all
  labellers by more than max(3 x 1.4826 x MAD, 0.15) over at least 5 such judgements;
* **minimum-agreement filter**: the share of units whose majority share max(p, 1 - p) is below
  the threshold, i.e. what ``min_agreement`` would drop.

A preference unit's values are "first text better", "second better" and "tie".
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

import numpy as np
from rewardserve.training.consensus import pair_votes
from rewardserve.training.judgements import JudgedItem

OUTLIER_MIN_JUDGEMENTS = 5
OUTLIER_FLOOR = 0.15


def unit_agreement(counts: np.ndarray) -> float | None:
    """Share of agreeing pairs of judgements in one unit (None with fewer than two)."""
    n = counts.sum()
    if n < 2:
        return None
    return float((counts * (counts - 1)).sum() / (n * (n - 1)))


def krippendorff_alpha(value_counts: np.ndarray) -> float | None:
    """Nominal Krippendorff's alpha from a [units, values] count matrix (None when undefined)."""
    import krippendorff

    usable = value_counts[value_counts.sum(1) >= 2]
    if len(usable) == 0 or (usable.sum(0) > 0).sum() < 2:
        return None  # no pairable values, or only one value ever used: expected disagreement is 0
    return float(krippendorff.alpha(value_counts=usable, level_of_measurement="nominal"))


def kendalls_w(ranks: np.ndarray) -> float | None:
    """Kendall's W of an [m labellers, n texts] rank matrix, tie-corrected (None if undefined)."""
    from scipy.stats import rankdata

    m, n = ranks.shape
    if m < 2 or n < 2:
        return None
    r = np.vstack([rankdata(row) for row in ranks])  # midranks
    totals = r.sum(0)
    s = ((totals - totals.mean()) ** 2).sum()
    ties = sum(float((c**3 - c).sum()) for row in ranks for c in [np.unique(row, return_counts=True)[1]])
    denom = m**2 * (n**3 - n) - m * ties
    return float(12 * s / denom) if denom > 0 else None


def majority_share(counts: np.ndarray) -> float:
    """The largest value's share of a unit's judgements."""
    return float(counts.max() / counts.sum())


def summarize_units(counts: np.ndarray, min_agreement: float) -> dict[str, Any]:
    """Overall agreement of [units, values] counts: agreement, alpha, majority shares, filter share."""
    per_unit = [unit_agreement(c) for c in counts]
    scored = [a for a in per_unit if a is not None]
    shares = np.array([majority_share(c) for c in counts if c.sum() > 0])
    return {
        "units": int(len(counts)),
        "units_with_2_or_more": len(scored),
        "judgements": int(counts.sum()),
        "pairwise_agreement": float(np.mean(scored)) if scored else None,
        "krippendorff_alpha": krippendorff_alpha(counts),
        "mean_majority_share": float(shares.mean()) if len(shares) else None,
        "unanimous_share": float((shares == 1).mean()) if len(shares) else None,
        "min_agreement": min_agreement,
        "dropped_share": float((shares < min_agreement).mean()) if len(shares) else 0.0,
        "dropped_share_at": {f"{t:.2f}": float((shares < t).mean()) for t in (0.6, 0.7, 0.8, 0.9, 1.0)}
        if len(shares) else {},
    }


def preference_units(items: list[JudgedItem]) -> np.ndarray:
    """[pairs, 3] counts (first better, second better, tie) over every pair of every item."""
    rows = [(a, b, t) for item in items for _, _, a, b, t in pair_votes(item)]
    return np.array(rows, dtype=float).reshape(-1, 3)


def item_kendalls_w(items: list[JudgedItem]) -> list[float]:
    """Kendall's W of every ranking item with two or more labellers and three or more texts."""
    out = []
    for item in items:
        if len(item.texts) >= 3 and len(item.judgements) >= 2:
            w = kendalls_w(np.array([g.ranks for g in item.judgements]))
            if w is not None:
                out.append(w)
    return out


def labeller_disagreement(items: list[JudgedItem]) -> dict[str, dict[str, float]]:
    """Per labeller id: judgements compared and the share disagreeing with the others' majority."""
    seen: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for item in items:
        for i, j, *_ in pair_votes(item):
            sides = [(g.labeller, np.sign(g.ranks[j] - g.ranks[i])) for g in item.judgements]
            for k, (who, side) in enumerate(sides):
                if who is None:
                    continue
                others = sum(s for n, (_, s) in enumerate(sides) if n != k)
                if others == 0:
                    continue  # the other labellers tie (or there are none): no majority to compare with
                seen[who][0] += 1
                seen[who][1] += int(side != np.sign(others))
    return {who: {"judgements": n, "disagreement": bad / n} for who, (n, bad) in sorted(seen.items())}


def outlier_labellers(per_labeller: dict[str, dict[str, float]]) -> list[str]:
    """Labellers who disagree with the others far more than the rest (the rule in the module doc)."""
    rates = [v["disagreement"] for v in per_labeller.values()]
    if len(rates) < 3:
        return []
    med = statistics.median(rates)
    mad = statistics.median(abs(r - med) for r in rates)
    cut = med + max(3 * 1.4826 * mad, OUTLIER_FLOOR)
    return [who for who, v in per_labeller.items()
            if v["judgements"] >= OUTLIER_MIN_JUDGEMENTS and v["disagreement"] > cut]


def preference_agreement(items: list[JudgedItem], min_agreement: float) -> dict[str, Any]:
    """Agreement statistics of several labellers' preference judgements."""
    units = preference_units(items)
    decisive = units[units[:, :2].sum(1) > 0][:, :2]  # the filter looks at the votes for a side
    out = summarize_units(units, min_agreement)
    filt = summarize_units(decisive, min_agreement) if len(decisive) else {}
    out["dropped_share"] = filt.get("dropped_share", 0.0)
    out["dropped_share_at"] = filt.get("dropped_share_at", {})
    out["mean_majority_share"] = filt.get("mean_majority_share")
    out["unanimous_share"] = filt.get("unanimous_share")
    out["items"] = len(items)
    ws = item_kendalls_w(items)
    out["kendalls_w"] = float(np.mean(ws)) if ws else None
    out["kendalls_w_items"] = len(ws)
    if items and all(i.has_labeller_ids for i in items):
        per = labeller_disagreement(items)
        out["labellers"] = per
        out["outlier_labellers"] = outlier_labellers(per)
    return out
