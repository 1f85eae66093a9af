"""The measuring setup's ceiling: a ``RewardService`` whose ``Score`` does nothing.

A grpc.aio server (and, with ``--http-port``, an aiohttp ``POST /get_reward``) answering every
call with a constant response built once: no tokenizing, no model, no batching. Driven by the
same load generator on the same cores as the server under test, it shows how many requests
per second the client, gRPC / HTTP and the loopback allow at all; ``server / no-op`` says how
much of that ceiling the real server reaches. ``--processes N`` runs N such processes on the
same ports (SO_REUSEPORT), like a server spread over N processes, and ``--listeners K`` gRPC
servers in each (default: rewardserve's default ``grpc_listeners``), like its listeners.

    python -m rewardserve.benchmarks.noop_server --port 50070 --http-port 50071 --processes 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing as mp
import signal
import sys

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from rewardserve.service.auto_batching import DEFAULT_GRPC_LISTENERS

from rewardserve.v1 import reward_pb2 as pb
from rewardserve.v1 import reward_pb2_grpc

logger = logging.getLogger(__name__)

SERVICE_NAME = "rewardserve.v1.RewardService"
# One item's answer, so the response is the size of a real single-item answer.
RESPONSE = pb.ScoreResponse(model="noop", scores=[pb.ItemScore(reward=0.0, logits=[0.0], probabilities=[1.0])])


class NoopRewardServicer(reward_pb2_grpc.RewardServiceServicer):
    """``Score`` returns the same prebuilt response to every request."""

    async def Score(self, request, context):
        return RESPONSE


async def _http_site(port: int):
    from aiohttp import web

    async def get_reward(request: web.Request) -> web.Response:
        n = len(json.loads(await request.read()).get("query") or [0])  # one reward per query, as OpenRLHF expects
        return web.Response(body=json.dumps({"rewards": [0.0] * n, "scores": [0.0] * n, "extra_logs": {}}),
                            content_type="application/json")

    app = web.Application()
    app.router.add_post("/get_reward", get_reward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, reuse_port=True).start()
    return runner


async def serve(port: int, http_port: int | None, listeners: int = DEFAULT_GRPC_LISTENERS) -> None:
    """Serve until SIGTERM or SIGINT."""
    servicer, health_servicer, servers = NoopRewardServicer(), health.aio.HealthServicer(), []
    for _ in range(max(1, listeners)):
        server = grpc.aio.server(options=(("grpc.so_reuseport", 1),))
        reward_pb2_grpc.add_RewardServiceServicer_to_server(servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        if not server.add_insecure_port(f"127.0.0.1:{port}"):
            raise OSError(f"cannot listen on 127.0.0.1:{port}")
        servers.append(server)
    for server in servers:
        await server.start()
    runner = await _http_site(http_port) if http_port else None
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    if runner is not None:
        await runner.cleanup()
    await asyncio.gather(*(server.stop(0.5) for server in servers))


def _child(port: int, http_port: int | None, listeners: int) -> None:
    asyncio.run(serve(port, http_port, listeners))


def main(argv: list[str] | None = None) -> int:
    """Start ``--processes`` - 1 children, serve in this one too, stop them all on SIGTERM."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--http-port", type=int, default=None)
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--listeners", type=int, default=DEFAULT_GRPC_LISTENERS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx = mp.get_context("spawn")
    children = [ctx.Process(target=_child, args=(args.port, args.http_port, args.listeners), daemon=True)
                for _ in range(max(1, args.processes) - 1)]
    for c in children:
        c.start()
    logger.info("no-op server on 127.0.0.1:%d (http %s), %d processes x %d listeners", args.port, args.http_port,
                len(children) + 1, args.listeners)
    try:
        asyncio.run(serve(args.port, args.http_port, args.listeners))
    finally:
        for c in children:
            c.terminate()
        for c in children:
            c.join(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
