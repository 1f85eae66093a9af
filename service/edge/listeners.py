"""One server process's gRPC listeners: ``grpc_listeners`` grpc.aio servers on one port, one set of servicers.

grpc.aio's server accepts one call at a time: it asks gRPC core for the next call only once the
last one has reached the event loop. Under a flood of one-item requests about one call arrives
per loop turn, so the batcher sees one item at a time (the tiny bundle's mean batch at 256
clients: 1.05). Several servers on the same port (SO_REUSEPORT: the kernel gives each new
connection to one of them) each keep a call request open in gRPC core; in the same event loop
they hand over several calls per turn, which batch together. Every listener serves every service.

Measured on the tiny bundle, 2 processes on a 2-core VM (benchmarks/README.md, "Several gRPC
listeners" and "Sixteen listeners"): 256 single-item clients ran faster with 4 listeners than
with 1 in 4 of 5 repetitions (mean batch 1.6-2.5 against 1.05), and with 16 than with 4 in 4 of
5 (by 2-19%). A lone client ran alike with any of them (the VM's noise), and so did HH and
toxicity at 64 clients, whose batches the model's own time forms. An idle listener costs nothing.

Example::

    servers, port = await start_listeners(16, "0.0.0.0", 50051, security, register, shared=False)
    await stop_listeners(servers, grace_s=5.0)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import grpc
from rewardserve.service.edge.security import Security


async def start_listeners(count: int, host: str, port: int, security: Security,
                          register: Callable[[grpc.aio.Server], None], shared: bool) -> tuple[list[grpc.aio.Server], int]:
    """Start ``count`` servers on ``host:port`` (0: the first one's free port for all); return them and the port.

    ``register`` adds the servicers to one server. SO_REUSEPORT is set when the port is ``shared``
    with other processes or ``count`` > 1; either way the caller probe-binds the port first, so a
    port another server holds is refused instead of splitting its traffic.
    """
    options = [*security.grpc_options(), ("grpc.so_reuseport", 1 if shared or count > 1 else 0)]
    servers: list[grpc.aio.Server] = []
    for _ in range(max(1, count)):
        server = grpc.aio.server(interceptors=security.interceptors(), options=options)
        register(server)
        bound = security.add_port(server, f"{host}:{port}")
        if not bound:
            raise OSError(f"cannot listen on {host}:{port}")
        port = bound  # the rest share the first one's port
        servers.append(server)
    for server in servers:
        await server.start()
    return servers, port


async def stop_listeners(servers: Sequence[grpc.aio.Server], grace_s: float) -> None:
    """Stop every listener: calls still running get ``grace_s`` seconds to finish."""
    await asyncio.gather(*(server.stop(grace_s) for server in servers))
