"""``rewardserve eval --server ADDRESS DATA``: RewardBench accuracy of a served model.

The flags are added to training's ``eval`` subcommand (``training/cli.py`` calls
:func:`add_flags`), which hands a run with ``--server`` to :func:`run`; nothing here imports
torch. The scoring itself is :mod:`rewardserve.service.jobs.rewardbench`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rewardserve.service.cli import client_flags


def add_flags(parser: argparse.ArgumentParser) -> None:
    """``--server`` and the flags that go with it (model, chat, deadline, TLS and token)."""
    group = parser.add_argument_group("a served model, RewardBench data (--server)")
    group.add_argument("--server", "--address", dest="server", metavar="ADDRESS",
                       help="score DATA (RewardBench v1 or v2 records) through this server's gRPC API instead of "
                       f"a bundle; {client_flags.ADDRESS_HELP}")
    group.add_argument("--model", default="", help="with --server: the served model (default: the server's default)")
    group.add_argument("--chat", action="store_true", help="with --server: send each prompt and completion as a "
                       "user + assistant conversation (the model's chat template), not a (prompt, response) pair")
    group.add_argument("--timeout-s", type=float, default=300.0, help="with --server: deadline of each request")
    client_flags.add_security(parser)


def run(args: argparse.Namespace) -> int:
    """Score the file through the server; print per-subset accuracy; write the JSON to ``--out``."""
    from rewardserve.service.client import RewardClient, RewardServiceError
    from rewardserve.service.jobs import rewardbench

    from rewardserve.cli import CLIError

    if args.bundle is not None:
        raise CLIError("give a BUNDLE or --server, not both")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be >= 1, got {args.batch_size}")
    try:
        with RewardClient(args.server, timeout_s=args.timeout_s, **client_flags.security(args)) as client:
            scorer = rewardbench.client_scorer(client, model=args.model)
            result = rewardbench.evaluate(rewardbench.read_bench_records(args.data), scorer, args.batch_size, args.chat)
            result = {"server": args.server, "model": args.model or client.get_model("").name, **result}
    except RewardServiceError as e:
        raise CLIError(f"the server answered {e.code.name}: {e.details}") from e
    print(rewardbench.summary_table(result))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0
