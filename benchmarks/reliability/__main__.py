"""``python -m rewardserve.benchmarks.reliability``: run the reliability suite and print its one table.

Flags mirror :class:`ReliabilityConfig`; ``--quick`` is the fast subset the test suite runs.
Exit code 0 when every check passed, 1 otherwise.

    python -m rewardserve.benchmarks.reliability --quick --out /tmp/reliability
    python -m rewardserve.benchmarks.reliability --pairwise runs/hh-pairwise-onnx --classifier runs/toxicity-onnx
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from dataclasses import fields

from rewardserve.benchmarks.reliability.config import ReliabilityConfig


def parse(argv: list[str]) -> ReliabilityConfig:
    """The config from command-line flags (``--quick`` presets, explicit flags win)."""
    p = argparse.ArgumentParser(prog="python -m rewardserve.benchmarks.reliability", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(ReliabilityConfig):
        p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None,
                       help=f"{f.metadata['help']} (default: {f.default})")
    p.add_argument("--quick", action="store_true", help="the fast subset: short phases, same checks")
    args = p.parse_args(argv)
    values = {f.name: getattr(args, f.name) for f in fields(ReliabilityConfig) if getattr(args, f.name) is not None}
    return ReliabilityConfig.quick(**values) if args.quick else ReliabilityConfig(**values)


def main(argv: list[str] | None = None) -> int:
    """Run the suite; print the table; return the exit code."""
    from rewardserve.benchmarks.reliability.report import table
    from rewardserve.benchmarks.reliability.run import run_suite

    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = parse(argv)
    results = run_suite(config, command=shlex.join(["python", "-m", "rewardserve.benchmarks.reliability", *argv]))
    print(table(results))
    print(f"wrote {config.out}/results.json and results.md")
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
