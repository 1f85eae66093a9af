"""SIGTERM under load: accepted requests answered, new ones refused, health NOT_SERVING, exit 0.

A ``rewardserve serve`` subprocess takes load from ``sigterm_clients`` clients while a health
Watch stream is open; then it gets SIGTERM with requests in flight, and the clients keep
sending until it has exited. The server logs, as it stops, how many calls it handled by
status code; with the clients' own tally this accounts for every request:

* accepted (reached the servicer) = answered + refused "shutting down" while draining; the
  server's OK count must equal the answers that arrived, each with its solo scores, and no
  accepted call may end otherwise (CANCELLED, INTERNAL, ...);
* never accepted: UNAVAILABLE because nothing listens any more, or CANCELLED by gRPC core
  for calls it had taken off the socket but not yet handed to the event loop when the server
  stopped (counted and shown, not hidden: a client sees those as CANCELLED).

The process must exit with code 0 within the grace period (plus interpreter teardown).
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from collections import Counter
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rewardserve.benchmarks.reliability.common import (
    Section,
    SoloScorer,
    cli_server,
    distinct_pool,
    random_items,
)
from rewardserve.benchmarks.reliability.config import ReliabilityConfig

from rewardserve.v1 import reward_pb2 as pb
from rewardserve.v1 import reward_pb2_grpc

DRAINING = ("shutting down", "cancelling all calls")  # the servicer's refusal, or it as the server stops
NOT_LISTENING = ("connection refused", "failed to connect", "connect failed", "socket closed", "goaway")
SUMMARY = "calls by method and code: "
TEARDOWN_S = 1.5  # interpreter and thread teardown after the drain
RETRY_S = 0.02  # a refused client's pause before its next request
STATUS = health_pb2.HealthCheckResponse.ServingStatus.Name


def _classify(code: grpc.StatusCode, details: str) -> str:
    details = details.lower()
    if code is grpc.StatusCode.UNAVAILABLE and any(d in details for d in DRAINING):
        return "refused (draining)"
    if code is grpc.StatusCode.UNAVAILABLE and any(r in details for r in NOT_LISTENING):
        return "refused (not listening)"
    if code is grpc.StatusCode.CANCELLED:
        return "cancelled by gRPC"
    return f"other ({code.name})"


def _server_counts(log: Path) -> dict[str, int] | None:
    """The Score calls the server handled, by code, summed over the line each server process logs on
    stopping (``serve --processes N``: one each); None when no process logged one."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if SUMMARY in line]
    if not lines:
        return None
    counts: Counter = Counter()
    for line in lines:
        counts.update(json.loads(line.split(SUMMARY, 1)[1]).get("Score", {}))
    return dict(counts)


async def _watch(channel, seen: list[tuple[float, str]]) -> None:
    try:
        async for reply in health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest()):
            seen.append((time.monotonic(), STATUS(reply.status)))
    except grpc.aio.AioRpcError:
        pass  # the server went away: the stream ends


async def _drive(server, pool, cfg: ReliabilityConfig, scorer_tol: float) -> dict:
    rng = random.Random(cfg.seed)
    outcomes: list[tuple[float, float, str, str]] = []  # (sent, done, outcome, details)
    stopped = asyncio.Event()
    seen: list[tuple[float, str]] = []
    channel = grpc.aio.insecure_channel(server.target)
    stub = reward_pb2_grpc.RewardServiceStub(channel)
    watcher = asyncio.create_task(_watch(channel, seen))

    async def client(k: int) -> None:
        n = 0
        while not stopped.is_set():
            chosen = rng.sample(pool, rng.randint(1, 4))
            n += 1
            req = pb.ScoreRequest(items=[it for it, _ in chosen], options=pb.ScoreOptions(model="classifier"),
                                  request_id=f"{k}-{n}")
            sent = time.monotonic()
            try:
                resp = await stub.Score(req, timeout=30)
            except grpc.aio.AioRpcError as e:
                kind = _classify(e.code(), e.details() or "")
                outcomes.append((sent, time.monotonic(), kind, e.details() or ""))
                await asyncio.sleep(RETRY_S)  # as a client's retry policy would
                continue
            right = resp.request_id == req.request_id and len(resp.scores) == len(chosen) and all(
                e.matches(s, scorer_tol) for (_, e), s in zip(chosen, resp.scores, strict=True))
            outcomes.append((sent, time.monotonic(), "answered" if right else "wrong answer", ""))

    clients = [asyncio.create_task(client(k)) for k in range(cfg.sigterm_clients)]
    await asyncio.sleep(cfg.sigterm_load_s)
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = await asyncio.to_thread(server.proc.wait, cfg.grace_period_s + 30)
    except Exception:  # subprocess.TimeoutExpired: it did not exit; the caller kills it
        code = None
    exited = time.monotonic()
    await asyncio.sleep(0.3)  # clients see the closed port
    stopped.set()
    await asyncio.gather(*clients)
    watcher.cancel()
    await channel.close()
    return {"outcomes": outcomes, "seen": seen, "signalled": signalled, "exited": exited, "code": code}


def sigterm(models: dict[str, Path], scorer: SoloScorer, cfg: ReliabilityConfig, log_dir: Path) -> Section:
    """SIGTERM a loaded server and classify every request."""
    section = Section("SIGTERM under load")
    pool = distinct_pool(scorer, "classifier", random_items(random.Random(cfg.seed + 1), 96, 40), 32,
                         cfg.logit_tolerance)
    server = cli_server("sigterm", {"classifier": models["classifier"]}, log_dir, metrics=False,
                        precision="fp32", provider="cpu", intra_op_threads=1, grace_period_s=cfg.grace_period_s,
                        max_wait_ms=20)
    with server.start():
        r = asyncio.run(_drive(server, pool, cfg, cfg.logit_tolerance))
    sig, outcomes = r["signalled"], r["outcomes"]
    kinds = Counter(k for _, _, k, _ in outcomes)
    counted = _server_counts(server.log_path)
    served = counted or {}
    in_flight = sum(1 for s, d, k, _ in outcomes if k == "answered" and s < sig < d)
    after = [k for s, _, k, _ in outcomes if s > sig]
    statuses = [s for _, s in r["seen"]]
    exit_s = r["exited"] - sig
    accepted = kinds["answered"] + kinds["refused (draining)"]
    cut_off = {c: n for c, n in served.items() if c not in ("OK", "UNAVAILABLE")}
    odd = {k: n for k, n in kinds.items() if k.startswith("other") or k == "wrong answer"}
    section.figures.update(
        clients=cfg.sigterm_clients, requests=len(outcomes), by_outcome=dict(kinds), server_score_calls=served,
        accepted=accepted, answered_in_flight_at_signal=in_flight, sent_after_signal=len(after),
        health_statuses=[s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s],
        exit_code=r["code"], exit_s=round(exit_s, 2), grace_period_s=cfg.grace_period_s,
        odd_examples=[(round(s - sig, 3), round(d - sig, 3), k, det[:200]) for s, d, k, det in outcomes
                      if k.startswith("other") or k == "wrong answer"][:3])
    section.check("requests in flight at the signal were answered", in_flight > 0, in_flight)
    section.check("server: no accepted call cut off (only OK and UNAVAILABLE)", counted is not None and not cut_off,
                  cut_off or served or "no summary in the log")
    section.check("every answer the server sent arrived, with its solo scores",
                  served.get("OK") == kinds["answered"] and not odd,
                  f"server OK {served.get('OK')}, answered {kinds['answered']}, {odd or 'no wrong/other'}")
    section.check("every draining refusal arrived as UNAVAILABLE",
                  served.get("UNAVAILABLE", 0) <= kinds["refused (draining)"],
                  f"{served.get('UNAVAILABLE', 0)} sent, {kinds['refused (draining)']} seen")
    section.check("new requests refused with UNAVAILABLE", sum(k.startswith("refused") for k in after) > 0,
                  f"{sum(k.startswith('refused') for k in after)} of {len(after)} sent after the signal")
    # A Watch opened while the server still loads first sees NOT_SERVING: the drain is a NOT_SERVING after SERVING.
    section.check("health went SERVING -> NOT_SERVING",
                  "SERVING" in statuses and "NOT_SERVING" in statuses[statuses.index("SERVING"):], statuses[-3:])
    section.check("exit code 0", r["code"] == 0, r["code"])
    section.check(f"exited within the grace period (+{TEARDOWN_S:g} s teardown)",
                  exit_s <= cfg.grace_period_s + TEARDOWN_S, f"{exit_s:.2f} s", gated=cfg.gate_timings)
    return section
