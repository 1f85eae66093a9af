"""The load generator: closed-loop clients and open-loop Poisson arrivals, over gRPC or HTTP.

One asyncio loop drives every client as a coroutine; :mod:`benchmarks.client_pool` runs K such
loops in K processes when one would be the bottleneck. gRPC requests are serialized before
timing and sent as bytes (no per-request protobuf work in the client); clients share
``channels`` connections (each channel its own TCP connection: a local subchannel pool, so a
multi-process server behind SO_REUSEPORT sees them spread). HTTP requests are sent as
OpenRLHF's client sends them (:mod:`benchmarks.http_client`): a new connection per request.

Closed loop: ``concurrency`` clients each send a request, wait for its answer, send the next.
Open loop: requests arrive at Poisson times at a fixed rate whatever the server does, and a
request's latency counts from its *scheduled* arrival, so a slow server cannot hide its
queueing delay by slowing the load down (coordinated omission).

Example::

    result = asyncio.run(run_point("127.0.0.1:50051", requests, LoadSpec(concurrency=16, duration_s=5)))
    result.summary()["items_per_s"]
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
from rewardserve.benchmarks.http_client import litserve_call, openrlhf_call
from rewardserve.benchmarks.outcome import Call, RequestFailed

logger = logging.getLogger(__name__)

CLIENTS_PER_CHANNEL = 64  # HTTP/2 multiplexes well; a few channels spread the client-side work
OPEN_LOOP_CHANNELS = 4
MAX_OUTSTANDING = 20_000  # open loop: beyond this, arrivals are counted as CLIENT_OVERLOAD
SCORE_METHOD = "/rewardserve.v1.RewardService/Score"
# Each channel its own connection (gRPC otherwise shares one subchannel among identical channels).
CHANNEL_OPTIONS = (("grpc.use_local_subchannel_pool", 1),)
Request = tuple[Any, int, int]  # (ScoreRequest message or its bytes / an HTTP JSON body, items, real tokens)
__all__ = ["Call", "LoadResult", "LoadSpec", "Request", "RequestFailed", "run_point"]


@dataclass(frozen=True)
class LoadSpec:
    """One load point: closed loop with ``concurrency`` clients, or open loop at ``rate_rps``."""

    concurrency: int = 1
    rate_rps: float | None = None  # set: open loop at this many requests per second
    duration_s: float = 5.0
    warmup_s: float = 0.5  # requests started before this are sent but not recorded
    max_requests: int = 200_000
    timeout_s: float = 30.0
    seed: int = 0

    @property
    def mode(self) -> str:
        """``closed`` or ``open``."""
        return "closed" if self.rate_rps is None else "open"


@dataclass
class LoadResult:
    """What one load point measured, client side."""

    spec: LoadSpec
    latencies_s: list[float] = field(default_factory=list)  # recorded, successful requests
    errors: Counter = field(default_factory=Counter)  # status code name -> count
    items: int = 0  # completed within the measurement window
    tokens: int = 0
    requests: int = 0
    handled: int = 0  # every request answered (OK or not), warm-up and drain included
    window_s: float = 0.0
    client_cpu_s: float = 0.0
    client_procs: int = 1
    connections: int = 0  # gRPC channels opened (HTTP: 0, a new connection per request)

    def summary(self) -> dict:
        """Throughput, latency percentiles (ms) and errors of this point."""
        lat = np.asarray(self.latencies_s) * 1000.0
        pct = {f"p{q}_ms": float(np.percentile(lat, q)) if len(lat) else math.nan for q in (50, 90, 99)}
        return {
            "mode": self.spec.mode, "concurrency": self.spec.concurrency, "offered_rps": self.spec.rate_rps,
            "requests": self.requests, "items": self.items, "handled": self.handled,
            "items_per_s": self.items / self.window_s if self.window_s else 0.0,
            "tokens_per_s": self.tokens / self.window_s if self.window_s else 0.0,
            **pct, "mean_ms": float(lat.mean()) if len(lat) else math.nan,
            "max_ms": float(lat.max()) if len(lat) else math.nan,
            "errors": dict(self.errors), "error_count": int(sum(self.errors.values())),
            "client_cpu_cores": self.client_cpu_s / self.window_s if self.window_s else 0.0,
            "client_procs": self.client_procs, "connections": self.connections,
        }

    def merge(self, other: LoadResult) -> None:
        """Add another process's share of the same point (same start instant and window)."""
        self.latencies_s += other.latencies_s
        self.errors.update(other.errors)
        for name in ("items", "tokens", "requests", "handled", "client_cpu_s", "connections"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.window_s = max(self.window_s, other.window_s)


class _Recorder:
    """Counts completions inside the window [warm, end] and latencies of requests sent after warm."""

    def __init__(self, result: LoadResult, warm: float, end: float):
        self.r, self.warm, self.end = result, warm, end

    async def send(self, call: Call, req: Request, sent: float) -> None:
        payload, items, tokens = req
        try:
            await call(payload)
        except RequestFailed as e:
            self.r.handled += 1
            if sent >= self.warm:
                self.r.errors[e.code] += 1
            return
        done = time.perf_counter()
        self.r.handled += 1
        if sent >= self.warm:
            self.r.latencies_s.append(done - sent)
            self.r.requests += 1
        if self.warm <= done <= self.end:
            self.r.items += items
            self.r.tokens += tokens


def grpc_payloads(requests: Sequence[Request]) -> list[Request]:
    """Requests with their messages serialized once, before timing."""
    return [(m if isinstance(m, bytes) else m.SerializeToString(), i, t) for m, i, t in requests]


@contextlib.asynccontextmanager
async def grpc_calls(target: str, channels: int, timeout_s: float):
    """``channels`` ready gRPC channels to ``target``; yields one Score call (bytes in) per channel."""
    opened = [grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) for _ in range(max(1, channels))]
    try:
        await asyncio.gather(*(c.channel_ready() for c in opened))

        def caller(channel) -> Call:
            method = channel.unary_unary(SCORE_METHOD)  # no (de)serializer: bytes both ways

            async def call(payload: bytes) -> None:
                try:
                    await method(payload, timeout=timeout_s)
                except grpc.aio.AioRpcError as e:
                    raise RequestFailed(e.code().name) from None
            return call

        yield [caller(c) for c in opened]
    finally:
        await asyncio.gather(*(c.close() for c in opened))


@contextlib.asynccontextmanager
async def _calls(protocol: str, target: str, channels: int, timeout_s: float):
    if protocol == "grpc":
        async with grpc_calls(target, channels, timeout_s) as calls:
            yield calls
    elif protocol == "http":
        yield [openrlhf_call(target, timeout_s)]
    elif protocol == "litserve":  # the LitServe peer's own route, same client behaviour
        yield [litserve_call(target, timeout_s)]
    else:
        raise ValueError(f"protocol must be grpc, http or litserve, got {protocol!r}")


def default_channels(spec: LoadSpec) -> int:
    """Channels one loop opens when not told: one per 64 closed-loop clients, 4 for open loop."""
    return math.ceil(spec.concurrency / CLIENTS_PER_CHANNEL) if spec.mode == "closed" else OPEN_LOOP_CHANNELS


async def closed_loop(calls: Sequence[Call], requests: Sequence[Request], spec: LoadSpec, start: float,
                      offset: int = 0) -> LoadResult:
    """``spec.concurrency`` clients, each sending its next request as soon as the last returns."""
    result = LoadResult(spec)
    rec = _Recorder(result, start + spec.warmup_s, start + spec.warmup_s + spec.duration_s)
    issued = 0

    async def client(k: int) -> None:
        nonlocal issued
        call = calls[k % len(calls)]
        while issued < spec.max_requests:
            sent = time.perf_counter()
            if sent >= rec.end:
                return
            req = requests[(offset + issued) % len(requests)]
            issued += 1
            await rec.send(call, req, sent)

    await asyncio.gather(*(client(k) for k in range(spec.concurrency)))
    result.window_s = min(time.perf_counter(), rec.end) - rec.warm
    return result


async def open_loop(calls: Sequence[Call], requests: Sequence[Request], spec: LoadSpec, start: float,
                    offset: int = 0) -> LoadResult:
    """Requests at Poisson arrival times, ``spec.rate_rps`` per second; latency from the schedule."""
    if not spec.rate_rps or spec.rate_rps <= 0:
        raise ValueError(f"open loop needs rate_rps > 0, got {spec.rate_rps}")
    total_s = spec.warmup_s + spec.duration_s
    rng = np.random.default_rng(spec.seed)
    n = min(spec.max_requests, int(spec.rate_rps * total_s * 1.5) + 16)
    offsets = np.cumsum(rng.exponential(1.0 / spec.rate_rps, n))
    offsets = offsets[offsets < total_s]
    result = LoadResult(spec)
    rec = _Recorder(result, start + spec.warmup_s, start + total_s)
    pending: set[asyncio.Task] = set()
    for i, at in enumerate(offsets):
        scheduled = start + float(at)
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(pending) >= MAX_OUTSTANDING:
            result.errors["CLIENT_OVERLOAD"] += scheduled >= rec.warm
            continue
        # Latency counts from `scheduled`, even when the loop itself sends late.
        task = asyncio.create_task(rec.send(calls[i % len(calls)], requests[(offset + i) % len(requests)], scheduled))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(set(pending))
    result.window_s = min(time.perf_counter(), rec.end) - rec.warm
    return result


async def run_point(target: str, requests: Sequence[Request], spec: LoadSpec, protocol: str = "grpc",
                    channels: int | None = None, start_at: float | None = None, offset: int = 0) -> LoadResult:
    """Run one closed- or open-loop point from this process.

    ``target`` is ``host:port`` for gRPC, the ``/get_reward`` URL for HTTP. ``start_at`` (a
    ``time.perf_counter()`` instant, the same clock in every process of this machine) lets
    several processes share one window; ``offset`` staggers where each starts in ``requests``.
    """
    if protocol == "grpc":
        requests = grpc_payloads(requests)
    n = channels or default_channels(spec)
    async with _calls(protocol, target, n, spec.timeout_s) as calls:
        if start_at is not None and start_at > time.perf_counter():
            await asyncio.sleep(start_at - time.perf_counter())
        start = time.perf_counter() if start_at is None else start_at
        cpu = time.process_time()
        loop = closed_loop if spec.mode == "closed" else open_loop
        result = await loop(calls, requests, spec, start, offset)
        result.client_cpu_s = time.process_time() - cpu
        result.connections = len(calls) if protocol == "grpc" else 0
    return result
