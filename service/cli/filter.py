"""``rewardserve filter``: its flags mirror :class:`~rewardserve.service.jobs.filter.FilterConfig`."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import fields
from pathlib import Path
from typing import Any

from rewardserve.service.cli import client_flags
from rewardserve.service.jobs.filter import FilterConfig, run_filter
from rewardserve.service.jobs.filter import __doc__ as FILTER_DOC


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``filter`` subcommand (one flag per FilterConfig field, plus the TLS and token flags)."""
    p = sub.add_parser("filter", help="split JSONL outputs into kept/rejected by a classifier's probability",
                       description=FILTER_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(FilterConfig):
        if f.metadata.get("positional"):
            p.add_argument(f.name, help=f.metadata["help"])
            continue
        kwargs: dict[str, Any] = {"dest": f.name, "default": f.default, "help": f.metadata["help"]}
        if f.type == "bool":
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = {"float": float, "int": int, "Path | None": Path}.get(f.type, str)
        p.add_argument("--" + f.name.replace("_", "-"), **kwargs)
    client_flags.add_security(p)
    p.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace) -> int:
    from rewardserve.cli import CLIError

    try:
        config = FilterConfig(**{f.name: getattr(args, f.name) for f in fields(FilterConfig)})
        summary = asyncio.run(run_filter(config, client_flags.security(args) if config.address else {}))
    except (ValueError, RuntimeError) as e:
        raise CLIError(str(e)) from e
    print(summary.report())
    return 0
