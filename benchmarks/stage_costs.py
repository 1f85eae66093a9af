"""What each stage of the Score path costs under a flood of single-item requests, side by side.

    python -m rewardserve.benchmarks.stage_costs --out benchmarks/results/stage-costs-tiny    # tiny bundle

One run, the same clients (``--clients`` single-item gRPC clients from ``--client-procs``
processes) against five servers in turn, each one process:

- ``noop``: the no-op RewardService (:mod:`benchmarks.noop_server`), the measuring setup's floor;
- ``edge``: rewardserve with the model's ``score`` answering at once (decode, validate, status
  bookkeeping, build the response; no tokenizer, no batcher, no backend);
- ``tokenize``: ``edge`` plus formatting and tokenizing each item (``ScoringModel.prepare``);
- ``batcher``: the whole path, but the backend replaced by one that returns zeros at no cost;
- ``full``: the server as it ships.

These stand-ins exist only here, in the measuring tool, applied in the server's subprocess
before it starts; the server has no switch for them. Prints items/s, server CPU per request
(psutil over the server's process tree) and mean batch per stage, and what each stage adds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from rewardserve.benchmarks.client_pool import ClientPool
from rewardserve.benchmarks.environment import default_data
from rewardserve.benchmarks.loadgen import LoadSpec
from rewardserve.benchmarks.run import tiny_onnx
from rewardserve.benchmarks.server_proc import ServerProcess, _serve_main
from rewardserve.benchmarks.workload import Workload

STAGES = ("edge", "tokenize", "batcher", "full")


def _stand_in(stage: str) -> None:
    """Patch the server in this (its own) process for ``stage``."""
    import numpy as np
    from rewardserve.service.domain import ItemScore
    from rewardserve.service.engine import models

    if stage in ("edge", "tokenize"):
        async def score(self, items, options, deadline, name_of="items[{}]".format):
            if stage == "tokenize":
                self.prepare(items, options.truncation or self.spec.truncation_side, name_of)
            return [ItemScore(logits=(0.0,), probabilities=(0.5,), reward=0.0, num_tokens=1, truncated=False)] * len(items)

        models.ScoringModel.score = score
    elif stage == "batcher":
        load = models.ScoringModel.load.__func__

        def zero_cost(cls, *args, **kwargs):
            model = load(cls, *args, **kwargs)
            model.batcher.run_batch = lambda batch: np.zeros((len(batch), len(model.spec.labels)), np.float32)
            return model

        models.ScoringModel.load = classmethod(zero_cost)


def measure(server: ServerProcess, pool: ClientPool, spec: LoadSpec) -> dict:
    """One gRPC point against a started server (after a 1 s warm-up): items/s, latency, errors, server CPU
    us per request, mean batch and padding efficiency (None for a server without rewardserve's metrics)."""
    pool.run(server.target, "grpc", LoadSpec(concurrency=spec.concurrency, duration_s=1.0))  # warm
    before = server.snapshot()
    result = pool.run(server.target, "grpc", spec)
    stats, summary = server.snapshot().since(before), result.summary()
    return {"items_per_s": summary["items_per_s"], "p50_ms": summary["p50_ms"], "p99_ms": summary["p99_ms"],
            "errors": summary["error_count"], "cpu_us_per_request": 1e6 * stats["server_cpu_s"] / max(result.handled, 1),
            "mean_batch": stats.get("mean_batch_size"), "padding_efficiency": stats.get("padding_efficiency")}


def table(rows: dict[str, dict]) -> str:
    """Markdown: each stage and what it adds to the one before."""
    lines = ["| stage | items/s | server CPU us/request | adds us/request | mean batch | errors |",
             "|---|---:|---:|---:|---:|---:|"]
    previous = None
    for name, r in rows.items():
        adds = "" if previous is None else f"{r['cpu_us_per_request'] - previous:+.0f}"
        batch = "-" if r["mean_batch"] is None else f"{r['mean_batch']:.2f}"
        lines.append(f"| {name} | {r['items_per_s']:.0f} | {r['cpu_us_per_request']:.0f} | {adds} | {batch} "
                     f"| {r['errors']} |")
        previous = r["cpu_us_per_request"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run every stage with the same clients; print the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, help="ONNX bundle (default: the bench's tiny bundle)")
    p.add_argument("--clients", type=int, default=256)
    p.add_argument("--client-procs", type=int, default=2)
    p.add_argument("--duration-s", type=float, default=6.0)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    args.bundle = args.bundle or tiny_onnx()
    workload = Workload.load(args.bundle, default_data(args.bundle), max_texts=400, seed=0)
    out = args.out or Path(tempfile.mkdtemp(prefix="stage-costs-"))
    out.mkdir(parents=True, exist_ok=True)
    spec = LoadSpec(concurrency=args.clients, duration_s=args.duration_s, warmup_s=0.5)
    rows: dict[str, dict] = {}
    with ClientPool(args.client_procs, {"grpc": workload.requests(1)}) as pool:
        with ServerProcess.noop(out, processes=1, http=False).start(60) as noop:
            rows["noop"] = measure(noop, pool, spec)
        for stage in STAGES:
            server = ServerProcess.rewardserve(args.bundle, "auto", threads=1, max_batch_items=64, max_wait_ms=None,
                                               log_dir=out, name=f"stage-{stage}", processes=1)
            server.argv = [sys.executable, "-m", "rewardserve.benchmarks.stage_costs", "--serve", stage,
                           server.argv[-1]]
            with server.start(180):
                rows[stage] = measure(server, pool, spec)
    text = table(rows)
    (out / "stage_costs.md").write_text(text)
    (out / "stage_costs.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:  # the server subprocess of one stage
        _stand_in(sys.argv[2])
        sys.exit(_serve_main(sys.argv[3]))
    sys.exit(main())
