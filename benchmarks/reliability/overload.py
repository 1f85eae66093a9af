"""Overload: the queue fills, callers get RESOURCE_EXHAUSTED at once, throughput recovers.

A ``rewardserve serve`` subprocess with a 64-item queue runs three closed-loop phases: normal
load (4 clients x 8 items, fits the queue), overload (``overload_clients`` x 16 items, which
does not; rejected clients back off as :class:`RewardClient` does), then normal load again.
Rejections must be prompt (p50 under a bound and under half the served p50; p99 and max are
reported: they include the first burst of all clients at once), nothing but
RESOURCE_EXHAUSTED may fail, and the last phase must reach the first phase's throughput
(within ``recovery_ratio``) with no rejections.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from rewardserve.benchmarks.reliability.common import Section, cli_server, percentile_ms, random_items
from rewardserve.benchmarks.reliability.config import ReliabilityConfig
from rewardserve.service.client import RetryPolicy

from rewardserve.v1 import reward_pb2 as pb
from rewardserve.v1 import reward_pb2_grpc

QUEUE_ITEMS = 64
NORMAL = (4, 8)  # clients, items per request
RETRY = RetryPolicy()  # rejected clients back off as RewardClient does: exponential, full jitter


@dataclass
class Phase:
    """One closed-loop phase, client side."""

    name: str
    clients: int
    items_per_request: int
    seconds: float = 0.0
    items: int = 0
    ok_latency_s: list[float] = field(default_factory=list)
    rejected_latency_s: list[float] = field(default_factory=list)
    other: Counter = field(default_factory=Counter)

    def summary(self) -> dict:
        """Throughput and latencies of the phase."""
        return {"clients": self.clients, "items_per_request": self.items_per_request,
                "items_per_s": round(self.items / self.seconds, 1), "ok": len(self.ok_latency_s),
                "ok_p50_ms": percentile_ms(self.ok_latency_s, 50),
                "rejected": len(self.rejected_latency_s),
                "rejected_p50_ms": percentile_ms(self.rejected_latency_s, 50),
                "rejected_p99_ms": percentile_ms(self.rejected_latency_s, 99),
                "rejected_max_ms": percentile_ms(self.rejected_latency_s, 100), "other_errors": dict(self.other)}


async def _run(stub, phase: Phase, items: list[pb.Item], duration_s: float) -> Phase:
    rng = random.Random(phase.name)
    end = time.monotonic() + duration_s

    async def client() -> None:
        rejections = 0
        while time.monotonic() < end:
            req = pb.ScoreRequest(items=rng.sample(items, phase.items_per_request),
                                  options=pb.ScoreOptions(model="classifier"))
            sent = time.perf_counter()
            try:
                resp = await stub.Score(req, timeout=30)
            except grpc.aio.AioRpcError as e:
                if e.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                    phase.rejected_latency_s.append(time.perf_counter() - sent)
                    rejections += 1
                    pause = RETRY.backoff_s(min(rejections, RETRY.attempts))
                    await asyncio.sleep(min(pause, max(end - time.monotonic(), 0.0)))  # the phase ends on time
                else:
                    phase.other[e.code().name] += 1
                continue
            phase.ok_latency_s.append(time.perf_counter() - sent)
            rejections = 0
            if len(resp.scores) == len(req.items):
                phase.items += len(resp.scores)
            else:
                phase.other["WRONG_SHAPE"] += 1

    start = time.monotonic()
    await asyncio.gather(*(client() for _ in range(phase.clients)))
    phase.seconds = time.monotonic() - start
    return phase


async def _phases(target: str, items: list[pb.Item], cfg: ReliabilityConfig) -> list[Phase]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = reward_pb2_grpc.RewardServiceStub(channel)
        await _run(stub, Phase("warm-up", *NORMAL), items, 0.3)
        phases = [Phase("normal", *NORMAL), Phase("overload", cfg.overload_clients, 16), Phase("normal again", *NORMAL)]
        for phase in phases:
            await _run(stub, phase, items, cfg.overload_phase_s)
        return phases


def overload(models: dict[str, Path], cfg: ReliabilityConfig, log_dir: Path) -> Section:
    """Run the three phases against a small-queue server and check rejection speed and recovery."""
    section = Section("overload")
    items = random_items(random.Random(cfg.seed), 64, 40)
    server = cli_server("overload", {"classifier": models["classifier"]}, log_dir, metrics=False, precision="fp32",
                        provider="cpu", intra_op_threads=1, max_queue_items=QUEUE_ITEMS, max_items_per_request=16,
                        max_batch_items=16, max_wait_ms=2)
    with server.start():
        normal, over, again = asyncio.run(_phases(server.target, items, cfg))
    ratio = again.items / again.seconds / max(normal.items / normal.seconds, 1e-9)
    p50, served = percentile_ms(over.rejected_latency_s, 50), percentile_ms(over.ok_latency_s, 50)
    section.figures.update(queue_items=QUEUE_ITEMS, phase_s=cfg.overload_phase_s, normal=normal.summary(),
                           overload=over.summary(), normal_again=again.summary(), recovery_ratio=round(ratio, 2))
    section.check("normal load: no rejections or errors", not normal.rejected_latency_s and not normal.other,
                  normal.other or 0)
    section.check("overload: callers get RESOURCE_EXHAUSTED", len(over.rejected_latency_s) > 0,
                  f"{len(over.rejected_latency_s)} rejected, {len(over.ok_latency_s)} served")
    section.check("overload: no other errors", not over.other, dict(over.other) or 0)
    section.check(f"rejections prompt: p50 <= {cfg.rejection_p50_ms:g} ms and < half the served p50",
                  p50 is not None and served is not None and p50 <= min(cfg.rejection_p50_ms, served / 2),
                  f"p50 {p50:.1f} ms, served p50 {served:.1f} ms" if p50 and served else "none",
                  gated=cfg.gate_timings)
    section.check("afterwards: no rejections or errors", not again.rejected_latency_s and not again.other,
                  again.other or len(again.rejected_latency_s))
    section.check(f"throughput recovers: >= {cfg.recovery_ratio:g} x before", ratio >= cfg.recovery_ratio,
                  f"{ratio:.2f}", gated=cfg.gate_timings)
    return section
