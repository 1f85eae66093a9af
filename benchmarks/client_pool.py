"""K load-generator processes, so the client is not what limits a fast server.

Each worker process holds the requests (sent once, when the pool starts) and runs one load
point at a time with its share of the clients (closed loop) or of the arrival rate (open loop,
each with its own seed), from the same start instant (``time.perf_counter`` is the machine's
monotonic clock, shared by its processes). The parent merges the shares into one result.

Connections: at least ``8 x server_processes`` gRPC channels in all (never more than there
are clients), spread over the workers; HTTP opens a new connection per request anyway.

Example::

    with ClientPool(4, {"grpc": grpc_requests, "http": http_requests}) as pool:
        result = pool.run("127.0.0.1:50051", "grpc", LoadSpec(concurrency=256, duration_s=8), server_processes=2)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing as mp
import time
from collections.abc import Sequence
from dataclasses import replace

from rewardserve.benchmarks.loadgen import (
    OPEN_LOOP_CHANNELS,
    LoadResult,
    LoadSpec,
    Request,
    default_channels,
    grpc_payloads,
    run_point,
)

logger = logging.getLogger(__name__)

CHANNELS_PER_SERVER_PROCESS = 8
START_DELAY_S = 0.5  # time for every worker to open its channels before the common start


def total_channels(spec: LoadSpec, server_processes: int) -> int:
    """gRPC channels of one point: >= 8 per server process, one per 64 clients, at most one per client."""
    wanted = max(CHANNELS_PER_SERVER_PROCESS * max(1, server_processes), default_channels(spec))
    if spec.mode == "closed":
        return max(1, min(spec.concurrency, wanted))
    return max(OPEN_LOOP_CHANNELS, wanted)


def shares(spec: LoadSpec, channels: int, procs: int) -> list[tuple[LoadSpec, int]]:
    """Each worker's (spec, channels): clients or rate split as evenly as possible; none left idle."""
    out = []
    if spec.mode == "closed":
        procs = max(1, min(procs, spec.concurrency))
        for k in range(procs):
            clients = spec.concurrency // procs + (k < spec.concurrency % procs)
            mine = max(1, min(clients, round(channels * clients / spec.concurrency)))
            out.append((replace(spec, concurrency=clients, max_requests=math.ceil(spec.max_requests / procs)), mine))
    else:
        for k in range(procs):
            out.append((replace(spec, rate_rps=spec.rate_rps / procs, seed=spec.seed * 1000 + k,
                                max_requests=math.ceil(spec.max_requests / procs)), math.ceil(channels / procs)))
    return out


def _worker(conn, requests: dict[str, list[Request]]) -> None:
    """A worker process: run each point it is sent, answer with its LoadResult, until None."""
    logging.basicConfig(level=logging.WARNING)
    while True:
        job = conn.recv()
        if job is None:
            return
        target, protocol, spec, channels, start_at, offset = job
        try:
            result = asyncio.run(run_point(target, requests[protocol], spec, protocol, channels, start_at, offset))
            conn.send(result)
        except Exception as e:  # report it to the parent instead of hanging it
            conn.send(RuntimeError(f"client process failed: {type(e).__name__}: {e}"))


class ClientPool:
    """``procs`` load-generator processes (spawned: the parent already runs gRPC, which must not fork)."""

    def __init__(self, procs: int, requests: dict[str, Sequence[Request]]):
        if procs < 1:
            raise ValueError(f"client procs must be >= 1, got {procs}")
        self.procs = procs
        ready = {p: (grpc_payloads(r) if p == "grpc" else list(r)) for p, r in requests.items()}
        ctx = mp.get_context("spawn")
        self._conns, self._workers = [], []
        for k in range(procs):
            parent, child = ctx.Pipe()
            w = ctx.Process(target=_worker, args=(child, ready), name=f"loadgen-{k}", daemon=True)
            w.start()
            self._conns.append(parent)
            self._workers.append(w)

    def run(self, target: str, protocol: str, spec: LoadSpec, server_processes: int = 1) -> LoadResult:
        """One point from every worker at once; their shares merged."""
        channels = total_channels(spec, server_processes) if protocol == "grpc" else 0
        parts = shares(spec, channels, self.procs)
        start_at = time.perf_counter() + START_DELAY_S + 0.01 * channels
        for k, ((share, mine), conn) in enumerate(zip(parts, self._conns, strict=False)):
            conn.send((target, protocol, share, mine, start_at, k * 7919))
        results = [conn.recv() for conn in self._conns[: len(parts)]]
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise failed[0]
        merged = LoadResult(spec, client_procs=len(results))
        for r in results:
            merged.merge(r)
        return merged

    def close(self) -> None:
        """Stop the workers."""
        for conn in self._conns:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send(None)
        for w in self._workers:
            w.join(5)
            if w.is_alive():
                w.terminate()

    def __enter__(self) -> ClientPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_one(target: str, protocol: str, requests: Sequence[Request], spec: LoadSpec,
            pool: ClientPool | None = None, server_processes: int = 1) -> LoadResult:
    """One point: from the pool's processes, or from this process (same channel rule) without one."""
    if pool is not None:
        return pool.run(target, protocol, spec, server_processes)
    channels = total_channels(spec, server_processes) if protocol == "grpc" else 0
    return asyncio.run(run_point(target, requests, spec, protocol, channels or None))
