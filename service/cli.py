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
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, TextIO

from rewardserve.enums import Truncation, enum_values

SCORE_CONCURRENCY = 8  # requests in flight while scoring a file


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``serve`` and ``score`` subcommands."""
    from service.config import PRECISION_CHOICES, ServiceConfig

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
    where.add_argument("--server", metavar="HOST:PORT", help="score through this server")
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

    from service.filter import add_parser as add_filter

    add_filter(sub)  # `rewardserve filter`, defined beside its config


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
    from service.credentials import read_token

    return {"tls_ca_file": args.tls_ca_file, "tls_cert_file": args.tls_cert_file,
            "tls_key_file": args.tls_key_file, "token": read_token(args.token_file, os.environ)}


# ------------------------------------------------------------------ serve
def _serve(args: argparse.Namespace) -> int:
    from service.config import ServiceConfig
    from service.server import serve

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
        from service.config import load_file

        return bool(load_file(args.config).get("models"))
    return False


# ------------------------------------------------------------------ health
def _health(args: argparse.Namespace) -> int:
    """Exit 0 when the server reports SERVING, 1 otherwise (container health checks use this)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from service.credentials import bearer_metadata, open_channel

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
    from service.errors import InvalidArgument

    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be >= 1, got {args.batch_size}")
    rows = _read_items(args.input)
    out = sys.stdout if args.output == "-" else open(args.output, "w")  # noqa: SIM115
    try:
        runner = _score_via_server if args.server else _score_in_process
        asyncio.run(runner(args, rows, out))
    except InvalidArgument as e:
        raise CLIError(str(e)) from e
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"scored {len(rows)} items", file=sys.stderr)
    return 0


def _read_items(path: str) -> list[tuple[int, Any, Any]]:
    """Return (line number, item, id) for each non-empty line; errors name the line."""
    from rewardserve.cli import CLIError
    from service.errors import InvalidArgument
    from service.types import item_from_obj, validate_items

    stream = sys.stdin if path == "-" else open(path)  # noqa: SIM115
    rows = []
    with stream:
        for lineno, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                item = item_from_obj(obj, f"line {lineno}")
                validate_items([item], 1)
            except json.JSONDecodeError as e:
                raise CLIError(f"{path}: line {lineno}: invalid JSON: {e.msg}") from e
            except InvalidArgument as e:
                raise CLIError(f"{path}: {str(e).replace('items[0]', f'line {lineno}')}") from e
            rows.append((lineno, item, obj.get("id") if isinstance(obj, dict) else None))
    return rows


ScoreChunk = Callable[[list[Any]], Awaitable[tuple[str, list[Any]]]]


async def _score_rows(rows: list[tuple[int, Any, Any]], batch_size: int, score: ScoreChunk, out: TextIO) -> None:
    """Score rows in chunks, a few requests in flight, and write results in input order."""
    from service.errors import InvalidArgument

    limit = asyncio.Semaphore(SCORE_CONCURRENCY)
    chunks = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]

    async def one(chunk):
        async with limit:
            try:
                return await score([item for _, item, _ in chunk])
            except InvalidArgument as e:  # name the input line, not the index in the request
                raise InvalidArgument(re.sub(r"items\[(\d+)\]", lambda m: f"line {chunk[int(m[1])][0]}", str(e))) from e

    tasks = [asyncio.ensure_future(one(c)) for c in chunks]
    try:
        for chunk, task in zip(chunks, tasks, strict=True):
            model, scores = await task
            for (lineno, _, item_id), s in zip(chunk, scores, strict=True):
                record = {"line": lineno, **({"id": item_id} if item_id is not None else {}), "model": model}
                out.write(json.dumps({**record, **s.to_dict()}) + "\n")
    finally:
        for t in tasks:
            t.cancel()


async def _score_via_server(args, rows, out) -> None:
    from rewardserve.cli import CLIError
    from service.client import AsyncRewardClient, RewardServiceError
    from service.errors import InvalidArgument

    async with AsyncRewardClient(args.server, timeout_s=args.timeout_s, **_client_security(args)) as client:

        async def score(items):
            try:
                r = await client.score(items, model=args.model_name, truncation=args.truncation,
                                       normalize=args.normalize)
            except RewardServiceError as e:
                if e.code.name == "INVALID_ARGUMENT":
                    raise InvalidArgument(e.details) from e
                raise CLIError(f"server {args.server}: {e}") from e  # e.g. UNAUTHENTICATED: a message, no traceback
            return r.model, list(r.scores)

        await _score_rows(rows, args.batch_size, score, out)


async def _score_in_process(args, rows, out) -> None:
    from service.config import ModelSource, ServiceConfig
    from service.metrics import ServiceMetrics
    from service.models import ModelRegistry
    from service.types import ScoreOptions

    name = args.model_name or args.model.name
    config = ServiceConfig(models=(ModelSource(name, str(args.model)),), precision=args.precision,
                           provider=args.provider, metrics_port=None, max_batch_tokens=_tokens_for(args.model))
    registry = await asyncio.to_thread(ModelRegistry.load, config, ServiceMetrics(), False)
    registry.start()
    model = registry.get(name)
    options = ScoreOptions(truncation=None if args.truncation is None else Truncation(args.truncation),
                           normalize=args.normalize)
    try:

        async def score(items):
            return model.name, await model.score(items, options, time.monotonic() + args.timeout_s)

        await _score_rows(rows, args.batch_size, score, out)
    finally:
        await registry.stop()


def _tokens_for(bundle: Path) -> int:
    """A token budget that fits the bundle's max_length (at least the server default)."""
    from rewardserve.bundle import RewardSpec

    return max(16384, RewardSpec.load(bundle).max_length)

