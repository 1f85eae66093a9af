"""``rewardserve bench``: throughput and latency of rewardserve against its limit and baselines.

Flags mirror :class:`BenchConfig`. ``--quick`` is a small sweep for smoke tests (flags given
explicitly still win).

    rewardserve bench --bundle runs/hh-pairwise-onnx --source-bundle runs/hh-pairwise --out results/cpu
    rewardserve bench --tiny --client-procs 2 --protocols grpc,http --concurrency 1,256 --out results/tiny
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Any

QUICK = {"concurrency": "1,8", "duration_s": 1.5, "open_loop_fractions": "0.5", "limit_batch_sizes": "1,16",
         "max_texts": 64, "distribution_concurrency": 8}
_BOOLS = ("torch_baseline", "nobatch_baseline", "noop_baseline", "other_backends_baseline")
_FLAGS = ("allow_failed_parity", "tiny")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``bench`` subcommand."""
    from rewardserve.benchmarks.config import BenchConfig

    p = sub.add_parser("bench", help="benchmark a served ONNX bundle against its limit and baselines",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(BenchConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name in _BOOLS:
            p.add_argument("--no-" + f.name.replace("_", "-").removesuffix("-baseline"), dest=f.name,
                           action="store_false", default=None, help="skip: " + f.metadata["help"])
            continue
        if f.name in _FLAGS:
            p.add_argument(flag, dest=f.name, action="store_const", const=True, default=None, help=f.metadata["help"])
            continue
        default = f.default if not isinstance(f.default, tuple) else ",".join(map(str, f.default))
        p.add_argument(flag, dest=f.name, default=None,
                       help=f"{f.metadata['help']} (default: {default})")
    p.add_argument("--quick", action="store_true", help=f"small sweep for smoke tests: {QUICK}")
    p.set_defaults(handler=_bench)


def config_from_args(args: argparse.Namespace):
    """BenchConfig from parsed flags: explicit flags > --quick presets > defaults."""
    from rewardserve.benchmarks.config import BenchConfig

    values: dict[str, Any] = dict(QUICK) if args.quick else {}
    for f in fields(BenchConfig):
        value = getattr(args, f.name)
        if value is not None:
            values[f.name] = value
    if values.get("tiny") and "variants" not in values:
        values["variants"] = "fp32"  # the tiny bundle has only fp32
    for name, cast in (("client_procs", int), ("server_processes", int), ("ratio_concurrency", int),
                       ("trickle_base_ms", float), ("items_per_request", int), ("duration_s", float), ("max_requests", int),
                       ("distribution_concurrency", int), ("threads", int), ("max_texts", int),
                       ("max_batch_items", int), ("max_wait_ms", float), ("max_batch_tokens", int), ("request_timeout_s", float),
                       ("startup_timeout_s", float), ("seed", int)):
        if name in values:
            values[name] = cast(values[name])
    for name in ("bundle", "source_bundle", "data", "out"):
        if name in values:
            values[name] = Path(values[name])
    return BenchConfig(**values)


def _bench(args: argparse.Namespace) -> int:
    from rewardserve.benchmarks.run import run_bench

    config = config_from_args(args)
    results = run_bench(config)
    print((config.out / "results.md").read_text())
    plots = f" and {', '.join(_plots())}" if results["variants"] or results["systems"] else ""
    print(f"wrote {config.out}/results.json, results.md{plots}")
    return 0 if results["ratios"] or results.get("trickle") else 1


def _plots() -> list[str]:
    from rewardserve.benchmarks.report import PLOTS

    return list(PLOTS)
