"""How wide a packed row should be: the packed OpenVINO graph at several row widths, on batches as a server forms them.

    python -m rewardserve.benchmarks.packed_rows --bundle ~/.cache/rewardserve/quick/toxicity/onnx \\
        --data ../shared/data/hate-speech-offensive/dev.csv --out benchmarks/results/packed-rows-toxicity

A packed batch (:mod:`rewardserve.service.backends.packing`) fills rows of at least ``row_tokens``
tokens with whole items; wider rows hold more items per row but every token attends over the whole
row. The batcher takes items in arrival order, not sorted, so each batch here is a run of
consecutive texts of a shuffled workload (``random``); the padded graph on the same batches and on
length-sorted ones (the offline limit's batching) is timed beside it. One OpenVINO stream and
thread; the settings alternate within each repetition, so drift on a noisy VM hits them alike; the
best repetition counts.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from rewardserve.benchmarks.workload import Workload
from rewardserve.service.backends.choice import combination_path
from rewardserve.service.engine.encoding import pad_batch

from rewardserve.manifest import Manifest


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ints = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    p = argparse.ArgumentParser(prog="python -m rewardserve.benchmarks.packed_rows", description=__doc__.split("\n")[0])
    p.add_argument("--bundle", type=Path, required=True, help="an exported bundle with a packed graph")
    p.add_argument("--data", type=Path, required=True, help="texts (JSONL or CSV, as rewardserve bench reads)")
    p.add_argument("--precision", default="int8", choices=("fp32", "bf16", "int8"),
                   help="fp32 / bf16: model_fp32[_packed].onnx at that precision; int8: the weight-only int8 IRs")
    p.add_argument("--row-tokens", type=ints, default=[48, 64, 96, 128], help="packed row widths to time")
    p.add_argument("--batch-sizes", type=ints, default=[8, 16, 32], help="items per batch")
    p.add_argument("--max-texts", type=int, default=512)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write packed_rows.json here")
    return p.parse_args(argv)


def graphs(bundle: Path, manifest: Manifest, precision: str) -> tuple[Path, Path]:
    """The padded and the packed file that ``precision`` runs, each as export recorded it (checked by sha256)."""
    found = {c.packed: combination_path(c, manifest, bundle) for c in manifest.combinations
             if c.runtime == "openvino" and c.precision.value == precision}
    if set(found) != {False, True}:
        raise SystemExit(f"{bundle}: export recorded no {'padded and packed' if not found else 'packed'} OpenVINO "
                         f"{precision} graph (manifest.json); a BERT classifier exported with openvino installed has both")
    return found[False], found[True]


def main(argv: list[str] | None = None) -> int:
    from rewardserve.service.backends.openvino import OpenVinoBackend

    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    manifest = Manifest.load(args.bundle)
    padded_path, packed_path = graphs(args.bundle, manifest, args.precision)
    pad_id = manifest.pad_token_id
    items = Workload.load(args.bundle, args.data, args.max_texts, args.seed).encoded  # shuffled: arrival order
    padded = OpenVinoBackend(padded_path, args.precision, threads=1, streams=1)
    packed = {rt: OpenVinoBackend(packed_path, args.precision, threads=1, streams=1, row_tokens=rt)
              for rt in args.row_tokens}
    results = []
    for size in args.batch_sizes:
        arrival = [items[s : s + size] for s in range(0, len(items) - size + 1, size)]
        by_length = sorted(items, key=lambda e: e.num_tokens)
        ordered = [by_length[s : s + size] for s in range(0, len(items) - size + 1, size)]
        runs = {"padded, length-sorted": (padded, ordered), "padded": (padded, arrival)}
        runs |= {f"packed, rows >= {rt}": (backend, arrival) for rt, backend in packed.items()}
        feeds = {name: [pad_batch(b, pad_id) for b in batches] for name, (_, batches) in runs.items()}
        best = dict.fromkeys(runs, 0.0)
        for name, (backend, _) in runs.items():  # warm-up: every shape once
            for f in feeds[name]:
                backend.run(f)
        for _ in range(args.reps):
            for name, (backend, batches) in runs.items():
                start = time.perf_counter()
                for f in feeds[name]:
                    backend.run(f)
                best[name] = max(best[name], sum(map(len, batches)) / (time.perf_counter() - start))
        results += [{"batch": size, "setting": name, "items_per_s": round(v, 1)} for name, v in best.items()]
    print(f"{args.precision}, {len(items)} texts from {args.data}, one OpenVINO stream x 1 thread, best of {args.reps}\n")
    names = list(dict.fromkeys(r["setting"] for r in results))
    print("| batch | " + " | ".join(names) + " |\n|---:|" + "---:|" * len(names))
    for size in args.batch_sizes:
        row = {r["setting"]: r["items_per_s"] for r in results if r["batch"] == size}
        print(f"| {size} | " + " | ".join(f"{row[n]:,.1f}" for n in names) + " |")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "packed_rows.json").write_text(json.dumps({"precision": args.precision, "data": str(args.data),
                                                               "texts": len(items), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
