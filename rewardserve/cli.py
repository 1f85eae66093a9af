"""The ``rewardserve`` command: one subcommand per stage, each defined next to its stage.

Each stage module exposes ``register(subparsers)``; heavy imports (torch, onnxruntime)
happen inside the handlers, so ``rewardserve --help`` is fast and ``serve`` never loads torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from rewardserve import __version__

# Stage modules that add subcommands, in the order `--help` lists them.
STAGE_MODULES = ("rewardserve.training.cli", "rewardserve.export.cli", "rewardserve.service.cli", "rewardserve.defaults", "rewardserve.benchmarks.cli")


class CLIError(Exception):
    """A user error: printed as ``rewardserve: error: <message>`` with exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every stage's subcommands."""
    parser = argparse.ArgumentParser(
        prog="rewardserve", description="Reward models for RLHF: train, export to ONNX, serve over gRPC."
    )
    parser.add_argument("--version", action="version", version=f"rewardserve {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in STAGE_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except (CLIError, ValueError, FileNotFoundError) as e:
        # ValueError covers config validation, data and bundle errors: all name the problem.
        print(f"rewardserve {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
