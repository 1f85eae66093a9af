"""Side-by-side speed of an ONNX bundle's variants on one execution provider, as ratios.

Measures the un-optimized fp32 export and each variant on the same inputs in the same run,
prints sequences/s, tokens/s and the ratio to the baseline, and writes the results as JSON.
On CUDA, inputs and outputs are bound to the GPU (I/O binding).

    python -m rewardserve.benchmarks.export_speed models/tox-onnx --provider cpu --batch-size 8 --seq-len 128
    python -m rewardserve.benchmarks.export_speed models/tox-onnx --provider cuda --baseline fp32 --batch-size 32
    python -m rewardserve.benchmarks.export_speed models/tox-onnx --clock cpu   # one thread, CPU time: steady when shared
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
from rewardserve.export.pipeline import REFERENCE_FILE
from rewardserve.export.throughput import CPU, CUDA, make_session, measure, synthetic_feeds

from rewardserve.bundle import RewardSpec
from rewardserve.manifest import Manifest

PROVIDERS = {"cpu": CPU, "cuda": CUDA}
REFERENCE = "fp32_unoptimized"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit code."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("onnx_bundle", type=Path)
    p.add_argument("--provider", choices=sorted(PROVIDERS), default="cpu")
    p.add_argument("--precisions", nargs="+", default=None, help="variants to time (default: all in the manifest)")
    p.add_argument("--baseline", default=REFERENCE, help=f"'{REFERENCE}' or a precision (default {REFERENCE})")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--min-time-s", type=float, default=2.0, help="time per variant per round")
    p.add_argument("--rounds", type=int, default=5,
                   help="variants are timed in turn, round after round; ratios are medians over rounds "
                        "(a shared machine drifts by 10%% within a minute, so one pass each is not enough)")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: ONNX Runtime's default)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall: elapsed time; cpu: CPU time of one-thread sessions (forces --threads 1), "
                        "steady on a machine shared with other jobs")
    p.add_argument("--out", type=Path, default=None, help="results JSON (default: ./export_speed_<provider>.json)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    provider = PROVIDERS[args.provider]
    if args.clock == "cpu" and provider != CPU:
        print("--clock cpu measures CPU execution only: use --provider cpu, or --clock wall on cuda", file=sys.stderr)
        return 2
    manifest = Manifest.load(args.onnx_bundle)
    seq_len = min(args.seq_len, RewardSpec.load(args.onnx_bundle).max_length)
    names = args.precisions or sorted(manifest.variants)
    files = {REFERENCE: args.onnx_bundle / REFERENCE_FILE} if (args.onnx_bundle / REFERENCE_FILE).is_file() else {}
    files.update({n: manifest.variant(n).path(args.onnx_bundle) for n in names})
    if args.baseline not in files:
        print(f"baseline {args.baseline!r} is not among {sorted(files)}", file=sys.stderr)
        return 2
    inputs = manifest.variant(names[0]).inputs
    vocab = _vocab_size(args.onnx_bundle)
    feeds = synthetic_feeds(inputs, args.batch_size, seq_len, vocab, manifest.pad_token_id)

    threads = 1 if args.clock == "cpu" else args.threads
    sessions = {name: make_session(path, provider, threads) for name, path in files.items()}
    rounds: dict[str, list[dict]] = {name: [] for name in files}
    for _ in range(args.rounds):
        for name, session in sessions.items():
            rounds[name].append(measure(session, feeds, args.min_time_s, clock=args.clock))
    results = {}
    for name, runs in rounds.items():
        sps = [r["sequences_per_s"] for r in runs]
        results[name] = {**runs[int(np.argsort(sps)[len(sps) // 2])], "sequences_per_s_rounds": sps}
    for r in results.values():
        # Ratio per round (same minute, same machine state), then the median over rounds.
        per_round = [a / b for a, b in zip(r["sequences_per_s_rounds"], results[args.baseline]["sequences_per_s_rounds"],
                                           strict=True)]
        r["ratio_vs_baseline"] = float(np.median(per_round))
        r["ratio_rounds"] = per_round
    print(f"{provider}, batch {args.batch_size} x {seq_len} tokens, baseline {args.baseline}, "
          f"median of {args.rounds} interleaved rounds, {args.clock} clock, {threads or 'default'} threads")
    print(f"{'variant':18s} {'seq/s':>10s} {'tok/s':>12s} {'latency ms':>11s} {'ratio':>7s} {'ratio range':>14s}")
    for name, r in results.items():
        lo, hi = min(r["ratio_rounds"]), max(r["ratio_rounds"])
        print(f"{name:18s} {r['sequences_per_s']:10.1f} {r['tokens_per_s']:12.0f} {r['latency_ms']:11.2f} "
              f"{r['ratio_vs_baseline']:7.2f} {lo:6.2f}-{hi:<6.2f}")
    out = args.out or Path(f"export_speed_{args.provider}.json")
    out.write_text(json.dumps({"baseline": args.baseline, "results": results}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def _vocab_size(bundle: Path) -> int:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(bundle / "tokenizer.json")).get_vocab_size()


if __name__ == "__main__":
    sys.exit(main())
