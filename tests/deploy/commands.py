"""Check container commands with the real ``rewardserve`` CLI: parse them, build the server config.

Example::

    args = parse_command(["rewardserve", "serve", "--model", "hh=/models/hh"])
    config = serve_config(args, {"REWARDSERVE_HOST": "0.0.0.0"})
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tomllib
from dataclasses import fields

import pytest
from rewardserve.service.config import ServiceConfig

from rewardserve.cli import build_parser
from tests.conftest import REPO


def console_scripts() -> dict[str, str]:
    """The ``[project.scripts]`` of pyproject.toml."""
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def parse_command(argv: list[str], where: str = "") -> argparse.Namespace:
    """Parse a container's ``rewardserve ...`` command line with the CLI's own parser; fail on bad flags."""
    assert argv, f"{where}: empty command"
    assert argv[0] in console_scripts(), f"{where}: {argv[0]!r} is not a console script of pyproject.toml"
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return build_parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"{where}: the rewardserve CLI rejects {argv}:\n{stderr.getvalue()}")


def serve_config(args: argparse.Namespace, env: dict[str, str]) -> ServiceConfig:
    """The ServiceConfig ``rewardserve serve`` builds from these flags and this environment.

    Same merge as service/cli.py ``_serve`` (flags over ``REWARDSERVE_*`` over ``--config``);
    fields with no flag (secrets) come from the environment only.
    """
    values = {f.name: getattr(args, f.name, None) for f in fields(ServiceConfig)}
    try:
        return ServiceConfig.from_sources(values, env, args.config)
    except ValueError as e:
        pytest.fail(f"the server would refuse these settings: {e}")


def bind_hosts(config: ServiceConfig) -> dict[str, str]:
    """Every bind-address setting (``host``, ``metrics_host`` ...) and its value."""
    return {f.name: getattr(config, f.name) for f in fields(config) if f.name == "host" or f.name.endswith("_host")}


def open_ports(config: ServiceConfig) -> dict[str, int]:
    """Every port setting that is on (``port``, ``metrics_port`` ...) and its value."""
    return {f.name: getattr(config, f.name) for f in fields(config)
            if (f.name == "port" or f.name.endswith("_port")) and getattr(config, f.name) is not None}
