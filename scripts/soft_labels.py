"""Hard vs soft labels for the toxicity classifier: train 3 seeds each, evaluate on dev, summarise.

    .venv/bin/python scripts/soft_labels.py                       # all 6 runs (about 6 min each on 2 cores)
    .venv/bin/python scripts/soft_labels.py --summary-only        # the table from the finished runs

Every run is the README's toxicity recipe through the real CLI (`rewardserve train classifier`,
then `rewardserve eval ... --label-votes` so hard and soft runs are scored the same way against
the vote distribution). A run whose eval.json exists is not repeated. Prints mean ± sd (sample
sd, n-1) per variant and metric, and writes runs/soft-labels/summary.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path("../shared/data/hate-speech-offensive")
VOTES = "hate_speech=toxic,offensive_language=toxic,neither=non_toxic"
RECIPE = ["--text-column", "tweet", "--label-column", "class", "--label-map", "0=toxic,1=toxic,2=non_toxic",
          "--reward-label", "non_toxic", "--max-length", "64", "--truncation-side", "right", "--batch-size", "32",
          "--learning-rate", "5e-5", "--num-epochs", "1"]
VARIANTS = {
    "hard": [],
    "soft": ["--label-votes", VOTES],
    "hard_ls0.1": ["--label-smoothing", "0.1"],
    "soft_ls0.1": ["--label-votes", VOTES, "--label-smoothing", "0.1"],
}
METRICS = ("accuracy", "macro_f1", "vote_ece", "vote_brier", "vote_correlation")


def run(variant: str, seed: int, out: Path) -> dict:
    """Train and evaluate one (variant, seed); reuse the eval JSON when it is there."""
    bundle, ev = out / f"{variant}-seed{seed}", out / f"{variant}-seed{seed}.eval.json"
    if not ev.is_file():
        cli = [sys.executable, "-m", "rewardserve.cli"]
        subprocess.run([*cli, "train", "classifier", "--train-data", str(DATA / "train.csv"), "--output-dir",
                        str(bundle), *RECIPE, *VARIANTS[variant], "--seed", str(seed)], check=True, cwd=REPO)
        subprocess.run([*cli, "eval", str(bundle), str(DATA / "dev.csv"), "--label-votes", VOTES,
                        "--out", str(ev)], check=True, cwd=REPO)
    return json.loads(ev.read_text())


def value(metrics: dict, name: str) -> float:
    """A metric as one number (the toxic class's correlation, which equals the other's)."""
    v = metrics[name]
    return v["toxic"] if isinstance(v, dict) else v


def main() -> int:
    """Run what is missing, then print and save the summary."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="hard,soft", help=f"comma-separated, from {sorted(VARIANTS)}")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default="runs/soft-labels")
    ap.add_argument("--summary-only", action="store_true", help="do not train; summarise finished runs")
    args = ap.parse_args()
    out = REPO / args.out
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = args.variants.split(",")
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for seed in seeds:  # seed-major, so a partial run already compares the variants
        for variant in variants:
            ev = out / f"{variant}-seed{seed}.eval.json"
            if args.summary_only and not ev.is_file():
                continue
            results[variant].append(run(variant, seed, out))
    summary: dict = {}
    for variant, runs in results.items():
        if not runs:
            continue
        summary[variant] = {"seeds": len(runs)}
        for m in METRICS:
            xs = [value(r, m) for r in runs]
            sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
            summary[variant][m] = {"mean": statistics.fmean(xs), "sd": sd, "values": xs}
    base = summary.get("hard", {}).get("vote_ece", {}).get("mean")
    print(f"{'variant':<12} {'n':>2} " + " ".join(f"{m:>18}" for m in METRICS))
    for variant, s in summary.items():
        cells = " ".join(f"{s[m]['mean']:>9.4f} ± {s[m]['sd']:.4f}" for m in METRICS)
        print(f"{variant:<12} {s['seeds']:>2} {cells}")
        if base and variant != "hard":
            s["vote_ece_change_vs_hard"] = s["vote_ece"]["mean"] / base - 1
            print(f"{'':<12}    vote_ece vs hard: {s['vote_ece_change_vs_hard']:+.1%}")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
