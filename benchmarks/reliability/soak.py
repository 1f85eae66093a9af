"""Bounded soak: many concurrent clients, two models, unary and streaming, every answer checked.

A ``rewardserve serve`` subprocess serves the pairwise and the classifier model. ``clients``
coroutines (a quarter of them on ScoreStream, the rest unary) send requests of 1 to 16 items
drawn from per-model pools of distinct items, each pool item scored solo up front. Every
response must carry its own request_id and model, one score per item, and each score must
equal that item's solo score (token count, truncation, logits within the tolerance): anything
else counts as misrouted. A request that never got an answer or a status is lost. The server's
RSS is sampled throughout; after the warm-up it may grow by at most the stated bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psutil
from rewardserve.benchmarks.reliability.common import (
    Expected,
    Section,
    SoloScorer,
    cli_server,
    distinct_pool,
    random_items,
)
from rewardserve.benchmarks.reliability.config import ReliabilityConfig

from rewardserve.v1 import reward_pb2 as pb
from rewardserve.v1 import reward_pb2_grpc

SIZES = (1, 1, 2, 3, 4, 8, 16)  # items per request
STREAM_WINDOW = 4  # requests in flight on one stream
MIB = 1 << 20


@dataclass
class Ledger:
    """What the clients sent and what came back."""

    sent: int = 0
    answered: int = 0
    items: int = 0
    failed: Counter = field(default_factory=Counter)
    lost: int = 0
    misrouted: int = 0
    examples: list[str] = field(default_factory=list)
    streamed: int = 0

    def verify(self, req: pb.ScoreRequest, model: str, expected: list[Expected], resp: pb.ScoreResponse,
               tol: float) -> None:
        """Count a response as answered, or as misrouted naming what is wrong."""
        problem = ""
        if resp.request_id != req.request_id:
            problem = f"request_id {resp.request_id!r} for {req.request_id!r}"
        elif resp.model != model:
            problem = f"{req.request_id}: model {resp.model!r}, asked {model!r}"
        elif len(resp.scores) != len(expected):
            problem = f"{req.request_id}: {len(resp.scores)} scores for {len(expected)} items"
        else:
            bad = [i for i, (e, s) in enumerate(zip(expected, resp.scores, strict=True)) if not e.matches(s, tol)]
            if bad:
                problem = f"{req.request_id}: items {bad} differ from their solo scores"
        if problem:
            self.misrouted += 1
            if len(self.examples) < 5:
                self.examples.append(problem)
        else:
            self.answered += 1
            self.items += len(expected)


class Traffic:
    """Random requests over the pools: model, size and items vary per request."""

    def __init__(self, pools: dict[str, list[tuple[pb.Item, Expected]]], seed: int):
        self.pools, self.rng, self.count = pools, random.Random(seed), 0

    def next(self, client: int) -> tuple[pb.ScoreRequest, str, list[Expected]]:
        """A new request with a unique request_id, its model and its expected scores."""
        model = self.rng.choice(sorted(self.pools))
        chosen = [self.rng.choice(self.pools[model]) for _ in range(self.rng.choice(SIZES))]
        self.count += 1
        req = pb.ScoreRequest(items=[it for it, _ in chosen], options=pb.ScoreOptions(model=model),
                              request_id=f"c{client}-r{self.count}")
        return req, model, [e for _, e in chosen]


async def _unary(stub, k: int, traffic: Traffic, ledger: Ledger, stop_at: float, cfg: ReliabilityConfig):
    while time.monotonic() < stop_at:
        req, model, expected = traffic.next(k)
        ledger.sent += 1
        try:
            resp = await stub.Score(req, timeout=cfg.soak_timeout_s)
        except grpc.aio.AioRpcError as e:
            ledger.failed[e.code().name] += 1
            continue
        ledger.verify(req, model, expected, resp, cfg.logit_tolerance)


async def _stream(stub, k: int, traffic: Traffic, ledger: Ledger, stop_at: float, cfg: ReliabilityConfig):
    """Streams of 1 to 24 requests, up to STREAM_WINDOW in flight, one after another."""
    while time.monotonic() < stop_at:
        await _one_stream(stub.ScoreStream(timeout=cfg.soak_timeout_s), k, traffic.rng.randint(1, 24), traffic,
                          ledger, stop_at, cfg.logit_tolerance)


async def _one_stream(call, k: int, n: int, traffic: Traffic, ledger: Ledger, stop_at: float, tol: float) -> None:
    outstanding: dict[str, tuple] = {}
    window = asyncio.Semaphore(STREAM_WINDOW)

    async def write() -> None:
        for _ in range(n):
            await window.acquire()
            if time.monotonic() >= stop_at:
                break
            req, model, expected = traffic.next(k)
            outstanding[req.request_id] = (req, model, expected)
            ledger.sent += 1
            ledger.streamed += 1
            await call.write(req)
        await call.done_writing()

    writer = asyncio.create_task(write())
    try:
        async for resp in call:
            entry = outstanding.pop(resp.request_id, None)
            if entry is None:  # an id we never sent, or an answer twice
                ledger.misrouted += 1
                ledger.examples.append(f"stream answer for unknown request_id {resp.request_id!r}")
            else:
                ledger.verify(*entry, resp, tol)
            window.release()
        await writer
    except grpc.aio.AioRpcError as e:
        ledger.failed[e.code().name] += len(outstanding)
        outstanding.clear()
        writer.cancel()
    ledger.lost += len(outstanding)  # the stream ended OK without answering these


def tree_rss(pid: int) -> int:
    """Resident memory of a server and every process under it (``serve --processes N``'s children)."""
    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):  # a child may exit between listing and reading
            total += child.memory_info().rss
    return total


async def _memory(pid: int, samples: list[tuple[float, int]], start: float, done: asyncio.Event) -> None:
    while not done.is_set():
        samples.append((time.monotonic() - start, tree_rss(pid)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 0.5)


async def _load(target: str, pid: int, pools, cfg: ReliabilityConfig) -> tuple[Ledger, list, float]:
    traffic, ledger, samples = Traffic(pools, cfg.seed), Ledger(), []
    channels = [grpc.aio.insecure_channel(target) for _ in range(4)]
    start = time.monotonic()
    done = asyncio.Event()
    sampler = asyncio.create_task(_memory(pid, samples, start, done))
    stop_at = start + cfg.soak_duration_s
    try:
        stubs = [reward_pb2_grpc.RewardServiceStub(c) for c in channels]
        await asyncio.gather(*((_stream if k % 4 == 0 else _unary)(stubs[k % 4], k, traffic, ledger, stop_at, cfg)
                               for k in range(cfg.soak_clients)))
    finally:
        elapsed = time.monotonic() - start
        done.set()
        await sampler
        await asyncio.gather(*(c.close() for c in channels))
    return ledger, samples, elapsed


def soak(models: dict[str, Path], scorer: SoloScorer, cfg: ReliabilityConfig, log_dir: Path) -> Section:
    """Run the soak and check lost, misrouted, failed and memory growth."""
    section = Section("soak")
    rng = random.Random(cfg.seed)
    pools = {m: distinct_pool(scorer, m, random_items(rng, 3 * cfg.soak_pool, cfg.soak_max_words), cfg.soak_pool,
                              cfg.logit_tolerance) for m in models}
    server = cli_server("soak", models, log_dir, precision="fp32", provider="cpu", max_queue_items=65536,
                        max_items_per_request=64, request_timeout_s=cfg.soak_timeout_s, grace_period_s=10)
    with server.start():
        rss_ready = tree_rss(server.proc.pid)
        ledger, samples, elapsed = asyncio.run(_load(server.target, server.proc.pid, pools, cfg))
        metrics = server.scrape()
        server.stop()
        exit_code = server.proc.returncode
    warm = next((rss for t, rss in samples if t >= cfg.soak_warmup_s), samples[-1][1])
    end, peak = samples[-1][1], max(rss for _, rss in samples)
    growth = (end - warm) / MIB
    failed = sum(ledger.failed.values())
    section.figures.update(
        clients=cfg.soak_clients, duration_s=round(elapsed, 1), models=sorted(models),
        pool_items={m: len(p) for m, p in pools.items()}, sent=ledger.sent, streamed=ledger.streamed,
        answered=ledger.answered, failed_by_code=dict(ledger.failed), lost=ledger.lost, misrouted=ledger.misrouted,
        items_answered=ledger.items, requests_per_s=round(ledger.answered / elapsed, 1),
        items_per_s=round(ledger.items / elapsed, 1), server_items=int(metrics["items"]),
        rss_ready_mib=round(rss_ready / MIB, 1), rss_after_warmup_mib=round(warm / MIB, 1),
        rss_end_mib=round(end / MIB, 1), rss_peak_mib=round(peak / MIB, 1), rss_growth_mib=round(growth, 1),
        tolerance=cfg.logit_tolerance, exit_code=exit_code)
    section.check("every request accounted for", ledger.sent == ledger.answered + failed + ledger.misrouted
                  + ledger.lost, f"{ledger.sent} sent")
    section.check("lost = 0", ledger.lost == 0, ledger.lost)
    section.check("misrouted = 0", ledger.misrouted == 0, "; ".join(ledger.examples) or 0)
    section.check("failed = 0", failed == 0, dict(ledger.failed) or 0)
    section.check("the server ran exactly the answered items", int(metrics["items"]) == ledger.items,
                  f"server {int(metrics['items'])}, answered {ledger.items}")
    section.check("both unary and streamed requests", ledger.streamed and ledger.sent > ledger.streamed,
                  f"{ledger.streamed} streamed")
    section.check(f"RSS growth after warm-up <= {cfg.memory_growth_mib:g} MiB", growth <= cfg.memory_growth_mib,
                  f"{growth:.1f} MiB")
    section.check("clean shutdown (exit 0)", exit_code == 0, exit_code)
    return section
