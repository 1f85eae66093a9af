"""``rewardserve data stats FILE``: how much the labellers of a data file agree.

Reads classification files with vote columns (``--label-votes``, as in training) or preference
files with several labellers' judgements (see :mod:`rewardserve.training.judgements`), prints the
statistics of :mod:`rewardserve.training.agreement` (``--json`` for machine-readable output) and
can draw a histogram of the per-unit majority share as PNG (``--plot``). The same functions give
the agreement summary training writes into ``reward.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from rewardserve.training.agreement import preference_agreement, summarize_units
from rewardserve.training.classification import (
    LabelledText,
    load_classification,
    parse_label_map,
    parse_label_votes,
)
from rewardserve.training.consensus import DEFAULT_PRIOR, consensus_ranking, pair_votes
from rewardserve.training.judgements import JudgedItem
from rewardserve.training.preferences import TextFormatter, load_judged_items

from rewardserve.bundle import HH_CHAT_TEMPLATE, AgreementSummary

logger = logging.getLogger(__name__)

DEFAULT_MIN_AGREEMENT = 0.75


def vote_stats(rows: list[LabelledText], names: list[str], min_agreement: float = DEFAULT_MIN_AGREEMENT):
    """Agreement of class votes; returns (statistics, per-unit majority shares)."""
    counts = np.array([r.votes for r in rows], dtype=float)
    out = {"kind": "class_votes", "classes": names, **summarize_units(counts, min_agreement)}
    out["vote_share_per_class"] = dict(zip(names, (counts.sum(0) / counts.sum()).tolist(), strict=True))
    return out, counts.max(1) / counts.sum(1)


def judgement_stats(items: list[JudgedItem], min_agreement: float = DEFAULT_MIN_AGREEMENT,
                    prior: float = DEFAULT_PRIOR, rankings: bool = True):
    """Agreement of preference judgements (and the consensus rankings); returns (statistics, shares)."""
    out: dict[str, Any] = {"kind": "preference_judgements", **preference_agreement(items, min_agreement)}
    shares = [max(a, b) / (a + b) for item in items for _, _, a, b, _ in pair_votes(item) if a + b]
    if not rankings:
        return out, np.array(shares)
    rankings = [consensus_ranking(item, prior) for item in items]
    out["consensus"] = {
        "method": f"Bradley-Terry maximum likelihood, {prior:g} pseudo-votes per pair split evenly",
        "borda_agreement": float(np.mean([r.borda_agrees for r in rankings])) if rankings else None,
        "items": [{"where": i.where, "judgements": len(i.judgements), "ranks": list(r.ranks),
                   "scores": [round(s, 4) for s in r.scores], "borda_ranks": list(r.borda_ranks)}
                  for i, r in zip(items, rankings, strict=True)],
    }
    return out, np.array(shares)


def summary_from_stats(stats: dict[str, Any], target: str) -> AgreementSummary:
    """The ``reward.json`` agreement summary of a statistics dict."""
    def opt(name: str) -> float | None:
        v = stats.get(name)
        return None if v is None or (isinstance(v, float) and not np.isfinite(v)) else float(v)

    return AgreementSummary(
        target=target, units=int(stats["units"]), judgements=int(stats["judgements"]),
        pairwise_agreement=opt("pairwise_agreement"), krippendorff_alpha=opt("krippendorff_alpha"),
        kendalls_w=opt("kendalls_w"), mean_majority_share=opt("mean_majority_share"),
        min_agreement=float(stats["min_agreement"]), dropped_share=float(stats["dropped_share"]),
        outlier_labellers=tuple(stats.get("outlier_labellers", ())),
    )


def plot_histogram(shares: np.ndarray, path: str | Path, title: str) -> Path:
    """Write a histogram of per-unit majority shares as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(shares, bins=np.linspace(0.5, 1.0, 11), edgecolor="black")
    ax.set_xlabel("majority share (agreement with the most common judgement)")
    ax.set_ylabel("units")
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``data stats`` to the top-level CLI."""
    data = sub.add_parser("data", help="inspect training data")
    cmds = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    p = cmds.add_parser("stats", help="labeller agreement of a data file (votes or several labellers' judgements)")
    p.add_argument("file", help="JSONL/CSV file or hf:NAME[:SPLIT]")
    p.add_argument("--label-votes", help="classification: vote columns COLUMN=LABEL,... (as in training)")
    p.add_argument("--label-map", help="classification: RAW=NAME,... for the label column")
    p.add_argument("--text-column", default="text", help="classification: column holding the text")
    p.add_argument("--label-column", default="label", help="classification: column holding the majority label")
    p.add_argument("--prompt-template", default="{prompt}{response}", help="preferences: as in training")
    p.add_argument("--min-agreement", type=float, default=DEFAULT_MIN_AGREEMENT,
                   help="report the share of units whose majority share is below this")
    p.add_argument("--prior", type=float, default=DEFAULT_PRIOR, help="Bradley-Terry pseudo-votes per pair")
    p.add_argument("--skip-invalid", action="store_true", help="skip and count bad records")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.add_argument("--plot", help="write a histogram of per-unit majority shares to this PNG")
    p.set_defaults(handler=_run_stats)


def _run_stats(args: argparse.Namespace) -> int:
    if not 0 < args.min_agreement <= 1:
        raise ValueError(f"--min-agreement must be in (0, 1], got {args.min_agreement}")
    if args.label_votes:
        rows, names, report = load_classification(
            args.file, args.text_column, args.label_column, parse_label_map(args.label_map),
            label_votes=parse_label_votes(args.label_votes), skip_invalid=args.skip_invalid)
        stats, shares = vote_stats(rows, names, args.min_agreement)
    else:
        items, report = load_judged_items(args.file, TextFormatter(args.prompt_template, HH_CHAT_TEMPLATE),
                                          args.skip_invalid)
        if not items:
            raise ValueError(f"{args.file}: no records with several judgements ('rankings', 'votes' or "
                             "'labeller'); for class votes give --label-votes")
        stats, shares = judgement_stats(items, args.min_agreement, args.prior)
    stats = {"file": str(args.file), **stats, "data": report.to_dict()}
    if args.plot:
        stats["plot"] = str(plot_histogram(shares, args.plot, Path(str(args.file)).name))
    print(json.dumps(stats, indent=2) if args.json else _text(stats))
    return 0


def _text(stats: dict[str, Any]) -> str:
    """The human-readable report."""
    def f(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = [f"{stats['file']}: {stats['kind'].replace('_', ' ')}",
             f"  units {stats['units']} ({stats['units_with_2_or_more']} with 2+ judgements), "
             f"judgements {stats['judgements']}",
             f"  pairwise agreement {f(stats['pairwise_agreement'])}   "
             f"Krippendorff's alpha (nominal) {f(stats['krippendorff_alpha'])}",
             f"  mean majority share {f(stats['mean_majority_share'])}   unanimous {f(stats['unanimous_share'])}",
             f"  min-agreement {stats['min_agreement']:g} would drop {stats['dropped_share']:.1%} of units"]
    if "kendalls_w" in stats:
        lines.append(f"  Kendall's W {f(stats['kendalls_w'])} over {stats['kendalls_w_items']} ranking items; "
                     f"Borda agrees with Bradley-Terry on {f(stats['consensus']['borda_agreement'])} of items")
    if "outlier_labellers" in stats:
        lines.append(f"  labellers {len(stats['labellers'])}; outliers: {', '.join(stats['outlier_labellers']) or 'none'}")
    if stats.get("plot"):
        lines.append(f"  histogram: {stats['plot']}")
    return "\n".join(lines)
