"""Faults inside one batch: cancelled and expired items, and an injected runner failure.

Both run against an in-process server whose classifier's ONNX Runtime session is wrapped by
a :class:`SessionProbe`: it records the token ids of every batch that really runs (so "not
run" is observed, not inferred) and can raise in a chosen batch. The load comes over gRPC.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rewardserve.benchmarks.reliability.common import InProcessServer, Section, SoloScorer, server_config
from rewardserve.service.edge.status import GENERIC_INTERNAL

from rewardserve.v1 import reward_pb2 as pb
from rewardserve.v1 import reward_pb2_grpc

MODEL = "classifier"


class SessionProbe:
    """Stands in for an ONNX Runtime session: records each batch's token ids; fails chosen batches."""

    def __init__(self, session, fail: set[int] | None = None):
        self._session = session
        self.fail = set(fail or ())
        self.batches: list[list[tuple[int, ...]]] = []
        self._lock = threading.Lock()  # batches may run in several inference threads

    def run(self, output_names, feed, *args, **kwargs):
        """Record the batch (unpadded ids per row), raise if it is to fail, else run it."""
        ids, mask = feed["input_ids"], feed["attention_mask"]
        rows = [tuple(ids[r, : int(mask[r].sum())].tolist()) for r in range(ids.shape[0])]
        with self._lock:
            index = len(self.batches)
            self.batches.append(rows)
        if index in self.fail:
            raise RuntimeError(f"injected runner failure in batch {index}")
        return self._session.run(output_names, feed, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._session, name)


@contextmanager
def probed(model, fail: set[int] | None = None) -> Iterator[SessionProbe]:
    """Wrap a served model's session in a probe for the duration of the block."""
    original = model.backend.session
    model.backend.session = probe = SessionProbe(original, fail)
    try:
        yield probe
    finally:
        model.backend.session = original


def _requests(tag: str, n: int, items: int) -> list[pb.ScoreRequest]:
    return [pb.ScoreRequest(items=[pb.Item(text=f"{tag} request {r} item {i}: " + "words " * (3 * i + r))
                                   for i in range(items)], options=pb.ScoreOptions(model=MODEL),
                            request_id=f"{tag}-{r}") for r in range(n)]


async def _outcome(call) -> tuple[str, pb.ScoreResponse | None, str]:
    try:
        return "OK", await call, ""
    except asyncio.CancelledError:
        return "CANCELLED", None, ""
    except grpc.aio.AioRpcError as e:
        return e.code().name, None, e.details() or ""


def _all_match(scorer: SoloScorer, req: pb.ScoreRequest, resp: pb.ScoreResponse | None, tol: float) -> bool:
    return resp is not None and resp.request_id == req.request_id and len(resp.scores) == len(req.items) and all(
        scorer.expect(MODEL, item).matches(s, tol) for item, s in zip(req.items, resp.scores, strict=True))


async def _wait(predicate, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.005)
    return True


def cancellation(models, scorer: SoloScorer, tol: float) -> Section:
    """Live, cancelled and expiring requests share one batch window: only the live items run."""
    section = Section("cancellation")
    window_s, expire_s = 1.0, 0.3
    # One batch for every live item, whatever their lengths: no padding floor (the scenario is about cancellation).
    config = server_config(models, max_wait_ms=window_s * 1000, max_batch_items=64, max_batch_tokens=64 * 512,
                           min_padding_efficiency=0.0)
    with InProcessServer(config) as server:
        section.figures.update(asyncio.run(_cancellation(server, scorer, tol, expire_s, section)))
    return section


async def _cancellation(server: InProcessServer, scorer, tol, expire_s, section) -> dict:
    model = server.registry.get(MODEL)
    live, cancel, expire = _requests("live", 4, 2), _requests("cancel", 3, 2), _requests("expire", 3, 2)
    total = sum(len(r.items) for r in live + cancel + expire)
    dropped = lambda: sum(server.sample("rewardserve_items_dropped_total", model=MODEL, reason=r)  # noqa: E731
                          for r in ("cancelled", "expired"))
    items_run = lambda: server.sample("rewardserve_items_total", model=MODEL)  # noqa: E731
    dropped0, run0 = dropped(), items_run()
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = reward_pb2_grpc.RewardServiceStub(channel)
        with probed(model) as probe:
            calls = [stub.Score(r, timeout=30) for r in live] + [stub.Score(r, timeout=30) for r in cancel] + \
                    [stub.Score(r, timeout=expire_s) for r in expire]
            together = await _wait(lambda: model.batcher.depth >= total, expire_s * 0.8)
            for call in calls[len(live): len(live) + len(cancel)]:
                call.cancel()
            outcomes = await asyncio.gather(*(_outcome(c) for c in calls))
            n_live = sum(len(r.items) for r in live)
            await _wait(lambda: model.batcher.depth == 0 and dropped() - dropped0 >= total - n_live, 10)
    codes = [o[0] for o in outcomes]
    live_out = outcomes[: len(live)]
    ran = Counter(row for batch in probe.batches for row in batch)
    live_ids = Counter(scorer.expect(MODEL, it).ids for r in live for it in r.items)
    section.check("all items queued in one batch window", together, f"{total} items")
    section.check("live requests answered with their solo scores",
                  all(_all_match(scorer, r, o[1], tol) for r, o in zip(live, live_out, strict=True)),
                  Counter(o[0] for o in live_out))
    section.check("cancelled requests: CANCELLED", codes[len(live): len(live) + len(cancel)] == ["CANCELLED"] * 3,
                  codes[len(live): len(live) + len(cancel)])
    section.check("expired requests: DEADLINE_EXCEEDED", codes[-3:] == ["DEADLINE_EXCEEDED"] * 3, codes[-3:])
    section.check("the runner saw exactly the live items", ran == live_ids,
                  f"{sum(ran.values())} rows run, {sum(live_ids.values())} live")
    section.check("live items ran in one batch", len(probe.batches) == 1, f"{len(probe.batches)} batches")
    section.check("server counted the others as dropped", dropped() - dropped0 == total - sum(live_ids.values()),
                  f"{dropped() - dropped0:.0f} dropped, {items_run() - run0:.0f} run")
    return {"items_sent": total, "items_live": sum(live_ids.values()), "items_run": sum(ran.values()),
            "items_dropped": int(dropped() - dropped0), "batches": len(probe.batches),
            "codes": dict(Counter(codes))}


def injected_failure(models, scorer: SoloScorer, tol: float) -> Section:
    """Batch 1 of several raises in the runner: only its requests fail (INTERNAL); serving goes on."""
    section = Section("injected runner failure")
    config = server_config(models, max_wait_ms=30.0, max_batch_items=4, inference_workers=1)
    with InProcessServer(config) as server:
        section.figures.update(asyncio.run(_injected(server, scorer, tol, section)))
    return section


async def _injected(server: InProcessServer, scorer, tol, section) -> dict:
    model = server.registry.get(MODEL)
    reqs, after = _requests("batch", 8, 2), _requests("after", 8, 2)
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = reward_pb2_grpc.RewardServiceStub(channel)
        with probed(model, fail={1}) as probe:
            outcomes = await asyncio.gather(*(_outcome(stub.Score(r, timeout=30)) for r in reqs))
            later = await asyncio.gather(*(_outcome(stub.Score(r, timeout=30)) for r in after))
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    failed_rows = set(probe.batches[1]) if len(probe.batches) > 1 else set()
    hit = [any(scorer.expect(MODEL, it).ids in failed_rows for it in r.items) for r in reqs]
    codes = [o[0] for o in outcomes]
    section.check("several batches ran, batch 1 failed", len(probe.batches) >= 3 and failed_rows,
                  f"{len(probe.batches)} batches, {len(failed_rows)} items in the failed one")
    section.check("exactly the failed batch's requests got INTERNAL",
                  [c == "INTERNAL" for c in codes] == hit, f"{sum(hit)} expected, {codes.count('INTERNAL')} got")
    section.check("with the generic message", all(o[2] == GENERIC_INTERNAL for o in outcomes if o[0] == "INTERNAL"))
    section.check("the other requests: solo scores",
                  all(_all_match(scorer, r, o[1], tol) for r, o, h in zip(reqs, outcomes, hit, strict=True) if not h))
    section.check("later requests all answered correctly",
                  all(_all_match(scorer, r, o[1], tol) for r, o in zip(after, later, strict=True)))
    section.check("health still SERVING", health.status == health_pb2.HealthCheckResponse.SERVING)
    return {"batches": len(probe.batches), "failed_batch_items": len(failed_rows),
            "requests_internal": codes.count("INTERNAL"), "requests_ok": codes.count("OK"),
            "later_ok": sum(o[0] == "OK" for o in later)}
