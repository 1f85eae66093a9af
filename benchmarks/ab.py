"""Two server settings side by side: A and B alternated (A, B, A, B, ...), the same clients, one table.

    python -m rewardserve.benchmarks.ab --a '{"inline_batch_ms": 0}' --b '{"inline_batch_ms": 2}' \\
        --points 256,open:800 --reps 2 --out benchmarks/results/ab-inline        # tiny bundle

A and B are ServiceConfig overrides (JSON) applied to the bench's rewardserve server (its defaults
otherwise; ``--processes`` 0: auto). Each point is a closed loop of N single-item gRPC clients, or
``open:R``, an open loop at R requests/s. Machine noise between runs is large on a shared VM
(+-25% here), which is why the settings alternate and every repetition is printed: read the
spread between repetitions before the difference between settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import fields
from pathlib import Path

from rewardserve.benchmarks.client_pool import ClientPool
from rewardserve.benchmarks.environment import default_data
from rewardserve.benchmarks.loadgen import LoadSpec
from rewardserve.benchmarks.run import tiny_onnx
from rewardserve.benchmarks.server_proc import ServerProcess
from rewardserve.benchmarks.stage_costs import measure
from rewardserve.benchmarks.workload import Workload
from rewardserve.service.config import ModelSource, ServiceConfig

SETTINGS = {f.name for f in fields(ServiceConfig)}


def check_overrides(overrides: object) -> str | None:
    """Why ``overrides`` cannot configure the server (not an object, an unknown or invalid setting), or None."""
    if not isinstance(overrides, dict):
        return "expected a JSON object of ServiceConfig settings"
    if unknown := sorted(set(overrides) - SETTINGS):
        return f"unknown setting(s) {', '.join(unknown)}"
    try:
        ServiceConfig(**{"models": (ModelSource("check", "."),), **overrides})
    except (TypeError, ValueError) as e:
        return str(e)
    return None


def parse_point(text: str, duration_s: float) -> LoadSpec:
    """``N`` (closed loop, N clients) or ``open:R`` (open loop at R requests/s)."""
    if text.startswith("open:"):
        return LoadSpec(rate_rps=float(text[5:]), duration_s=duration_s, warmup_s=1.0)
    return LoadSpec(concurrency=int(text), duration_s=duration_s, warmup_s=1.0)


def with_overrides(server: ServerProcess, overrides: dict) -> ServerProcess:
    """``server`` with ``overrides`` applied to the ServiceConfig it starts with (its last argument, JSON)."""
    server.argv[-1] = json.dumps({**json.loads(server.argv[-1]), **overrides})
    return server


def main(argv: list[str] | None = None) -> int:
    """Alternate A and B ``--reps`` times over every point; print and write the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, help="ONNX bundle (default: the bench's tiny bundle)")
    p.add_argument("--a", type=json.loads, required=True, help="ServiceConfig overrides of A, JSON")
    p.add_argument("--b", type=json.loads, required=True, help="ServiceConfig overrides of B, JSON")
    p.add_argument("--points", default="256,open:800", help="comma-separated: N clients, or open:R requests/s")
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--duration-s", type=float, default=6.0)
    p.add_argument("--processes", type=int, default=0, help="server processes (0: its auto)")
    p.add_argument("--client-procs", type=int, default=2)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    for label, overrides in (("--a", args.a), ("--b", args.b)):
        if problem := check_overrides(overrides):
            p.error(f"{label}: {problem}")
    try:
        specs = [parse_point(point, args.duration_s) for point in args.points.split(",")]
    except ValueError:
        p.error(f"--points: {args.points!r}: expected comma-separated N (clients) or open:R (requests/s)")
    bundle = args.bundle or tiny_onnx()
    out = args.out or Path(tempfile.mkdtemp(prefix="ab-"))
    out.mkdir(parents=True, exist_ok=True)
    workload = Workload.load(bundle, default_data(bundle), max_texts=400, seed=0)
    lines = ["| rep | setting | point | items/s | p50 ms | p99 ms | server CPU us/request | mean batch | padding eff. "
             "| errors |", "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    rows = []
    with ClientPool(args.client_procs, {"grpc": workload.requests(1)}) as pool:
        for rep in range(args.reps):
            for label, overrides in (("A", args.a), ("B", args.b)):
                server = with_overrides(ServerProcess.rewardserve(
                    bundle, "auto", threads=0, max_batch_items=64, max_wait_ms=None, log_dir=out,
                    name=f"ab-{label}-{rep}", processes=args.processes), overrides)
                with server.start(300):
                    for point, spec in zip(args.points.split(","), specs, strict=True):
                        r = measure(server, pool, spec)
                        rows.append({"rep": rep, "setting": label, "overrides": overrides, "point": point, **r})
                        eff = "-" if r["padding_efficiency"] is None else f"{r['padding_efficiency']:.3f}"
                        batch = "-" if r["mean_batch"] is None else f"{r['mean_batch']:.2f}"
                        lines.append(f"| {rep} | {label} `{json.dumps(overrides)}` | {point} | {r['items_per_s']:.0f} "
                                     f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['cpu_us_per_request']:.0f} "
                                     f"| {batch} | {eff} | {r['errors']} |")
                        print(lines[-1], flush=True)
    (out / "ab.md").write_text("\n".join(lines) + "\n")
    (out / "ab.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
