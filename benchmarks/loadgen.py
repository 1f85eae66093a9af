"""The load generator: closed-loop clients and open-loop Poisson arrivals over grpc.aio.

One asyncio process drives every client as a coroutine (no threads: the machine may have
two cores, shared with the server), clients share a few channels, and requests are built
before timing starts. Both loops are bounded in time and in count.

Closed loop: ``concurrency`` clients each send a request, wait for its answer, send the next.
Open loop: requests arrive at Poisson times at a fixed rate whatever the server does, and a
request's latency counts from its *scheduled* arrival, so a slow server cannot hide its
queueing delay by slowing the load down (coordinated omission).

Example::

    result = asyncio.run(closed_loop("127.0.0.1:50051", requests, LoadSpec(concurrency=16, duration_s=5)))
    result.summary()["items_per_s"]
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
import numpy as np

from rewardserve.v1 import reward_pb2 as pb
from rewardserve.v1 import reward_pb2_grpc

logger = logging.getLogger(__name__)

CLIENTS_PER_CHANNEL = 64  # HTTP/2 multiplexes well; a few channels spread the client-side work
OPEN_LOOP_CHANNELS = 4
MAX_OUTSTANDING = 20_000  # open loop: beyond this, arrivals are counted as CLIENT_OVERLOAD
Request = tuple[pb.ScoreRequest, int, int]  # (message, items, real tokens)


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
    window_s: float = 0.0
    client_cpu_s: float = 0.0

    def summary(self) -> dict:
        """Throughput, latency percentiles (ms) and errors of this point."""
        lat = np.asarray(self.latencies_s) * 1000.0
        pct = {f"p{q}_ms": float(np.percentile(lat, q)) if len(lat) else math.nan for q in (50, 90, 99)}
        return {
            "mode": self.spec.mode, "concurrency": self.spec.concurrency, "offered_rps": self.spec.rate_rps,
            "requests": self.requests, "items": self.items,
            "items_per_s": self.items / self.window_s if self.window_s else 0.0,
            "tokens_per_s": self.tokens / self.window_s if self.window_s else 0.0,
            **pct, "mean_ms": float(lat.mean()) if len(lat) else math.nan,
            "max_ms": float(lat.max()) if len(lat) else math.nan,
            "errors": dict(self.errors), "error_count": int(sum(self.errors.values())),
            "client_cpu_cores": self.client_cpu_s / self.window_s if self.window_s else 0.0,
        }


class _Recorder:
    """Counts completions inside the window [warm, end] and latencies of requests sent after warm."""

    def __init__(self, result: LoadResult, warm: float, end: float):
        self.r, self.warm, self.end = result, warm, end

    async def send(self, stub, req: Request, sent: float, timeout_s: float) -> None:
        msg, items, tokens = req
        try:
            await stub.Score(msg, timeout=timeout_s)
        except grpc.aio.AioRpcError as e:
            if sent >= self.warm:
                self.r.errors[e.code().name] += 1
            return
        done = time.perf_counter()
        if sent >= self.warm:
            self.r.latencies_s.append(done - sent)
            self.r.requests += 1
        if self.warm <= done <= self.end:
            self.r.items += items
            self.r.tokens += tokens


async def _channels(target: str, n: int) -> list:
    channels = [grpc.aio.insecure_channel(target) for _ in range(n)]
    await asyncio.gather(*(c.channel_ready() for c in channels))
    return channels


async def closed_loop(target: str, requests: Sequence[Request], spec: LoadSpec) -> LoadResult:
    """``spec.concurrency`` clients, each sending its next request as soon as the last returns."""
    channels = await _channels(target, math.ceil(spec.concurrency / CLIENTS_PER_CHANNEL))
    stubs = [reward_pb2_grpc.RewardServiceStub(c) for c in channels]
    result = LoadResult(spec)
    start = time.perf_counter()
    rec = _Recorder(result, start + spec.warmup_s, start + spec.warmup_s + spec.duration_s)
    issued = 0

    async def client(k: int) -> None:
        nonlocal issued
        stub = stubs[k % len(stubs)]
        while issued < spec.max_requests:
            sent = time.perf_counter()
            if sent >= rec.end:
                return
            req = requests[issued % len(requests)]
            issued += 1
            await rec.send(stub, req, sent, spec.timeout_s)

    cpu = time.process_time()
    try:
        await asyncio.gather(*(client(k) for k in range(spec.concurrency)))
    finally:
        result.client_cpu_s = time.process_time() - cpu
        await asyncio.gather(*(c.close() for c in channels))
    result.window_s = min(time.perf_counter(), rec.end) - rec.warm
    return result


async def open_loop(target: str, requests: Sequence[Request], spec: LoadSpec) -> LoadResult:
    """Requests at Poisson arrival times, ``spec.rate_rps`` per second; latency from the schedule."""
    if not spec.rate_rps or spec.rate_rps <= 0:
        raise ValueError(f"open loop needs rate_rps > 0, got {spec.rate_rps}")
    channels = await _channels(target, OPEN_LOOP_CHANNELS)
    stubs = [reward_pb2_grpc.RewardServiceStub(c) for c in channels]
    total_s = spec.warmup_s + spec.duration_s
    rng = np.random.default_rng(spec.seed)
    n = min(spec.max_requests, int(spec.rate_rps * total_s * 1.5) + 16)
    offsets = np.cumsum(rng.exponential(1.0 / spec.rate_rps, n))
    offsets = offsets[offsets < total_s]
    result = LoadResult(spec)
    start = time.perf_counter()
    rec = _Recorder(result, start + spec.warmup_s, start + total_s)
    pending: set[asyncio.Task] = set()
    cpu = time.process_time()
    try:
        for i, offset in enumerate(offsets):
            scheduled = start + float(offset)
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(pending) >= MAX_OUTSTANDING:
                result.errors["CLIENT_OVERLOAD"] += scheduled >= rec.warm
                continue
            # Latency counts from `scheduled`, even when the loop itself sends late.
            task = asyncio.create_task(rec.send(stubs[i % len(stubs)], requests[i % len(requests)],
                                                scheduled, spec.timeout_s))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.wait(set(pending))
    finally:
        result.client_cpu_s = time.process_time() - cpu
        await asyncio.gather(*(c.close() for c in channels))
    result.window_s = min(time.perf_counter(), rec.end) - rec.warm
    return result


async def run_point(target: str, requests: Sequence[Request], spec: LoadSpec) -> LoadResult:
    """Run one closed- or open-loop point."""
    return await (closed_loop if spec.mode == "closed" else open_loop)(target, requests, spec)
