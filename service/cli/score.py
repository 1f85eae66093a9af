"""``rewardserve score``: score a JSONL file through a server (``--address``) or in-process (``--bundle``).

The input is streamed in chunks with a few requests in flight; results are written in input
order, one line per item with every field. Bad lines stop the run naming the file and line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TextIO

from rewardserve.service.cli import client_flags

from rewardserve.enums import Truncation, enum_values

SCORE_CONCURRENCY = 8  # requests in flight while scoring a file


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``score`` subcommand."""
    from rewardserve.service.config import PRECISION_CHOICES

    score = sub.add_parser("score", help="score a JSONL file of items (via a server or in-process)",
                           description=__doc__)
    score.add_argument("input", help="JSONL: {'text'} | {'prompt','response'} | {'messages'}; '-' for stdin")
    score.add_argument("-o", "--output", default="-", help="JSONL out, one line per item with every field")
    client_flags.add_address(score, old=("--server",))
    score.add_argument("--bundle", type=Path, help="score in-process with this ONNX bundle instead of a server")
    score.add_argument("--model", "--model-name", dest="model", default="", action=client_flags.DeprecatedAlias,
                       old=("--model-name",), help="the served model (default: the server's default). "
                       "Deprecated: `--model DIR` (a bundle directory) means --bundle DIR")
    score.add_argument("--truncation", choices=enum_values(Truncation), help="default: the model's side")
    score.add_argument("--normalize", action="store_true", help="standardise rewards with training statistics")
    score.add_argument("--batch-size", type=int, default=64, help="items per request")
    score.add_argument("--timeout-s", type=float, default=300.0, help="deadline of each request")
    score.add_argument("--precision", choices=PRECISION_CHOICES, default="auto", help="with --bundle")
    score.add_argument("--provider", choices=["auto", "cpu", "cuda"], default="auto", help="with --bundle")
    client_flags.add_security(score)
    score.set_defaults(handler=_score)


def _where(args: argparse.Namespace) -> None:
    """Exactly one of --address and --bundle (the old `--model DIR` still means --bundle)."""
    from rewardserve.cli import CLIError

    if args.model and args.bundle is None and args.address is None and Path(args.model).is_dir():
        print("rewardserve: warning: `score --model DIR` is deprecated, use --bundle DIR", file=sys.stderr)
        args.bundle, args.model = Path(args.model), ""
    if (args.address is None) == (args.bundle is None):
        raise CLIError("give exactly one of --address (a server) or --bundle (an ONNX bundle, in-process)")


def _score(args: argparse.Namespace) -> int:
    from rewardserve.cli import CLIError

    _where(args)
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be >= 1, got {args.batch_size}")
    out = sys.stdout if args.output == "-" else open(args.output, "w")  # noqa: SIM115
    try:
        scored = asyncio.run(_score_file(args, out))
    except RuntimeError as e:  # e.g. the server said UNAUTHENTICATED: a message, no traceback
        raise CLIError(str(e)) from e
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"scored {scored} items", file=sys.stderr)
    return 0


async def _score_file(args: argparse.Namespace, out: TextIO) -> int:
    """Stream the input through the model (chunks, a few requests in flight); write results in order.

    Bad lines raise ``BadLine`` naming the file and line (the CLI prints it and exits 2).
    """
    from rewardserve.service.domain import item_from_obj
    from rewardserve.service.jobs.streaming import LineCounts, ScoreSettings, open_scorer

    settings = ScoreSettings(model=args.model, truncation=args.truncation, normalize=args.normalize,
                             timeout_s=args.timeout_s)
    counts = LineCounts()
    async with open_scorer(args.address, args.bundle, settings, args.precision, args.provider,
                           **client_flags.security(args)) as scorer:
        async for chunk, scores in scorer.stream(args.input, item_from_obj, args.batch_size, SCORE_CONCURRENCY,
                                                 counts=counts):
            for record, s in zip(chunk, scores, strict=True):
                item_id = record.obj.get("id") if isinstance(record.obj, dict) else None
                head = {"line": record.lineno, **({"id": item_id} if item_id is not None else {}),
                        "model": scorer.info.name}
                out.write(json.dumps({**head, **s.to_dict()}) + "\n")
    return counts.records
