"""``rewardserve serve``: run the server; its flags mirror :class:`ServiceConfig`.

Each flag is also settable as ``REWARDSERVE_<NAME>`` or in a TOML/JSON ``--config`` file. With
no ``--model``, the default models are built once (in a child process: the server stays
torch-free) and served from the cache.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``serve`` subcommand: one flag per :class:`ServiceConfig` field."""
    from rewardserve.service.config import PRECISION_CHOICES, ServiceConfig

    # No abbreviations: `--auth-token X` must fail, not be taken for `--auth-token-file X`.
    serve = sub.add_parser("serve", help="serve ONNX bundles over gRPC", allow_abbrev=False,
                           description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    serve.add_argument("--config", type=Path, help="TOML or JSON file of settings (flags and env win)")
    for f in fields(ServiceConfig):
        if f.metadata.get("secret"):  # e.g. auth_token: env or config file only, never in `ps`
            continue
        flag = {"models": "--model", "composites": "--composite", "model_aliases": "--model-alias"}.get(
            f.name, "--" + f.name.replace("_", "-"))
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": f.metadata["help"]}
        if f.name == "models":
            kwargs.update(action="append", metavar="NAME=DIR")
        elif f.name == "composites":
            kwargs.update(action="append", metavar="NAME=EXPR")
        elif f.name in ("model_aliases", "http_strip"):
            kwargs.update(action="append", metavar="ALIAS=NAME" if f.name == "model_aliases" else "MODEL=STRING")
        elif f.type == "bool":
            kwargs.update(action="store_const", const=True)
        elif f.name == "precision":
            kwargs.update(choices=PRECISION_CHOICES)
        elif f.name == "provider":
            kwargs.update(choices=["auto", "cpu", "cuda"])
        elif f.name == "on_model_error":
            kwargs.update(choices=["fail", "skip"])
        serve.add_argument(flag, **kwargs)
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from rewardserve.service.config import ServiceConfig
    from rewardserve.service.edge.ports import PortInUse
    from rewardserve.service.edge.processes import serve_processes

    from rewardserve.cli import CLIError

    if not _has_models(args):
        args.models = [f"{name}={path}" for name, path in _default_models().items()]
    values = {f.name: getattr(args, f.name) for f in fields(ServiceConfig) if not f.metadata.get("secret")}
    try:
        return serve_processes(ServiceConfig.from_sources(values, os.environ, args.config))
    except PortInUse as e:
        raise CLIError(str(e)) from None


def _default_models() -> dict[str, Path]:
    """The default models (hh first: the default), built on first run in a child process.

    Building needs torch; doing it in a child keeps this server process torch-free.
    """
    import subprocess

    from rewardserve import defaults
    from rewardserve.cli import CLIError

    recipe = os.environ.get("REWARDSERVE_RECIPE", "quick")
    found = defaults.cached(recipe)
    if found is None:
        print(f"rewardserve serve: no --model given; building the default models ({recipe} recipe) "
              f"into {defaults.home()} - this happens once", file=sys.stderr)
        proc = subprocess.run([sys.executable, "-m", "rewardserve.defaults", "--recipe", recipe],
                              stdout=subprocess.PIPE, text=True, check=False)
        found = defaults.cached(recipe)
        if proc.returncode != 0 or found is None:
            raise CLIError(f"building the default models failed (exit {proc.returncode}; see the log above)")
    return dict(sorted(found.items(), key=lambda kv: kv[0] != defaults.DEFAULT_MODEL))


def _has_models(args: argparse.Namespace) -> bool:
    if args.models or os.environ.get("REWARDSERVE_MODELS"):
        return True
    if args.config is not None:
        from rewardserve.service.config import load_file

        return bool(load_file(args.config).get("models"))
    return False
