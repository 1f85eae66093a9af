"""``rewardserve serve`` and ``rewardserve score``.

``serve`` runs the gRPC server; its flags mirror :class:`ServiceConfig` (each also settable as
``REWARDSERVE_<NAME>`` or in a TOML/JSON ``--config`` file). ``score`` scores a JSONL file,
through a server (``--server``) or in-process (``--model DIR``) with the same batcher.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, TextIO

from rewardserve.enums import Truncation, enum_values

SCORE_CONCURRENCY = 8  # requests in flight while scoring a file


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``serve`` and ``score`` subcommands."""
    from rewardserve.service.config import PRECISION_CHOICES, ServiceConfig

    # No abbreviations: `--auth-token X` must fail, not be taken for `--auth-token-file X`.
    serve = sub.add_parser("serve", help="serve ONNX bundles over gRPC", allow_abbrev=False,
                           description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    serve.add_argument("--config", type=Path, help="TOML or JSON file of settings (flags and env win)")
    for f in fields(ServiceConfig):
        if f.metadata.get("secret"):  # e.g. auth_token: env or config file only, never in `ps`
            continue
        flag = {"models": "--model", "composites": "--composite"}.get(f.name, "--" + f.name.replace("_", "-"))
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": f.metadata["help"]}
        if f.name == "models":
            kwargs.update(action="append", metavar="NAME=DIR")
        elif f.name == "composites":
            kwargs.update(action="append", metavar="NAME=EXPR")
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

    health = sub.add_parser("health", help="check a server's grpc.health.v1 status (exit 0 when SERVING)")
    health.add_argument("--address", default="127.0.0.1:50051", help="HOST:PORT of the server")
    health.add_argument("--service", default="", help="service name ('' = the whole server)")
    health.add_argument("--timeout-s", type=float, default=3.0, help="deadline of the check")
    _add_client_security(health)
    health.set_defaults(handler=_health)

    score = sub.add_parser("score", help="score a JSONL file of items (via a server or in-process)")
    score.add_argument("input", help="JSONL: {'text'} | {'prompt','response'} | {'messages'}; '-' for stdin")
    score.add_argument("-o", "--output", default="-", help="JSONL out, one line per item with every field")
    where = score.add_mutually_exclusive_group(required=True)
    where.add_argument("--server", metavar="ADDRESS", help="score through this server: HOST:PORT, several "
                       "comma-separated (balanced), or dns:///NAME:PORT")
    where.add_argument("--model", metavar="DIR", type=Path, help="score in-process with this ONNX bundle")
    score.add_argument("--model-name", default="", help="with --server: the model (default: the server's)")
    score.add_argument("--truncation", choices=enum_values(Truncation), help="default: the model's side")
    score.add_argument("--normalize", action="store_true", help="standardise rewards with training statistics")
    score.add_argument("--batch-size", type=int, default=64, help="items per request")
    score.add_argument("--timeout-s", type=float, default=300.0, help="deadline of each request")
    score.add_argument("--precision", choices=PRECISION_CHOICES, default="auto", help="with --model")
    score.add_argument("--provider", choices=["auto", "cpu", "cuda"], default="auto", help="with --model")
    _add_client_security(score)
    score.set_defaults(handler=_score)

    from rewardserve.service.filter import add_parser as add_filter

    _add_client_security(add_filter(sub))  # `rewardserve filter`, defined beside its config


def _add_client_security(parser: argparse.ArgumentParser) -> None:
    """Flags of a client of a server with TLS or tokens (the token is read from a file or env)."""
    group = parser.add_argument_group("TLS and token (when the server requires them)")
    group.add_argument("--tls-ca-file", help="PEM CA that signed the server's certificate (turns TLS on)")
    group.add_argument("--tls-cert-file", help="PEM client certificate, for mutual TLS (with --tls-key-file)")
    group.add_argument("--tls-key-file", help="PEM private key of --tls-cert-file")
    group.add_argument("--token-file", help="file whose first line is the bearer token "
                       "(default: REWARDSERVE_AUTH_TOKEN; never a flag, `ps` would show it)")


def _client_security(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of the clients for the TLS and token flags."""
    from rewardserve.service.credentials import read_token

    return {"tls_ca_file": args.tls_ca_file, "tls_cert_file": args.tls_cert_file,
            "tls_key_file": args.tls_key_file, "token": read_token(args.token_file, os.environ)}


# ------------------------------------------------------------------ serve
def _serve(args: argparse.Namespace) -> int:
    from rewardserve.service.config import ServiceConfig
    from rewardserve.service.server import serve

    if not _has_models(args):
        args.models = [f"{name}={path}" for name, path in _default_models().items()]
    values = {f.name: getattr(args, f.name) for f in fields(ServiceConfig) if not f.metadata.get("secret")}
    return serve(ServiceConfig.from_sources(values, os.environ, args.config))


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


# ------------------------------------------------------------------ health
def _health(args: argparse.Namespace) -> int:
    """Exit 0 when the server reports SERVING, 1 otherwise (container health checks use this)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from rewardserve.service.credentials import bearer_metadata, open_channel

    security = _client_security(args)
    token = security.pop("token")  # health needs none, but a proxy in front may
    with open_channel(args.address, (), **security) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout_s,
                metadata=bearer_metadata(token))
        except grpc.RpcError as e:
            print(f"{args.address}: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{args.address}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


# ------------------------------------------------------------------ score
def _score(args: argparse.Namespace) -> int:
    from rewardserve.cli import CLIError

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
    from rewardserve.service.streaming import (
        LineCounts,
        ScoreSettings,
        chunked,
        local_scorer,
        read_records,
        score_in_order,
        server_scorer,
    )
    from rewardserve.service.types import item_from_obj

    settings = ScoreSettings(model=args.model_name, truncation=args.truncation, normalize=args.normalize,
                             timeout_s=args.timeout_s)
    scorer_cm = (server_scorer(args.server, settings, **_client_security(args)) if args.server
                 else local_scorer(args.model, settings, args.precision, args.provider))
    counts = LineCounts()
    records = read_records(args.input, item_from_obj, counts=counts)
    async with scorer_cm as scorer:
        async for chunk, scores in score_in_order(chunked(records, args.batch_size), scorer.score,
                                                  SCORE_CONCURRENCY):
            for record, s in zip(chunk, scores, strict=True):
                item_id = record.obj.get("id") if isinstance(record.obj, dict) else None
                head = {"line": record.lineno, **({"id": item_id} if item_id is not None else {}),
                        "model": scorer.info.name}
                out.write(json.dumps({**head, **s.to_dict()}) + "\n")
    return counts.records
