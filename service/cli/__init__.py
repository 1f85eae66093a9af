"""The service's commands: ``serve``, ``health``, ``score`` and ``filter``, one module each.

Owns argument parsing and turning flags into the config objects of the parts it runs; may
import every other folder of the service (it is the top of the stack), and nothing imports it
but the ``rewardserve`` entry point (``rewardserve.cli``), through :func:`register`, and
training's ``eval``, which takes its ``--server`` flags and run from ``eval_server``.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the service's subcommands to the ``rewardserve`` parser."""
    from rewardserve.service.cli import filter as filter_cmd
    from rewardserve.service.cli import health, score, serve

    for command in (serve, health, score, filter_cmd):
        command.register(sub)
