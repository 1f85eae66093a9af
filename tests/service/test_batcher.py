"""The batcher: routing, batch bounds, length grouping, cancellation, deadlines, failures, drain."""

from __future__ import annotations

import asyncio
import math
import threading
import time

import numpy as np
import pytest
from rewardserve.service.domain import Encoded
from rewardserve.service.engine.batcher import HOLD_EARLY_S, Batcher
from rewardserve.service.errors import DeadlineExpired, QueueFull, Unavailable
from rewardserve.service.metrics import ServiceMetrics


def enc(uid: int, length: int) -> Encoded:
    """An item whose first id is its uid, so the fake runner can echo it back."""
    ids = np.full(length, uid, np.int64)
    return Encoded(ids, np.zeros(length, np.int64), False)


class FakeRunner:
    """Returns [uid, length] per item; records batches; can block, fail or miscount."""

    def __init__(self):
        self.batches: list[list[tuple[int, int]]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail: Exception | None = None
        self.drop_one = False

    def __call__(self, items):
        self.gate.wait(10)
        self.batches.append([(int(e.ids[0]), e.num_tokens) for e in items])
        if self.fail is not None:
            raise self.fail
        rows = np.array([[e.ids[0], e.num_tokens] for e in items], np.float32)
        return rows[:-1] if self.drop_one else rows


def make(runner, metrics=None, **kw) -> Batcher:
    opts = dict(max_batch_items=4, max_batch_tokens=64, max_wait_ms=20.0, max_queue_items=100)
    opts.update(kw)
    b = Batcher("m", runner, metrics or ServiceMetrics(), **opts)
    b.start()
    return b


async def gather(*futures, **kw):
    """asyncio.gather with a timeout, so a bug fails the test instead of hanging it."""
    return await asyncio.wait_for(asyncio.gather(*futures, **kw), 10)


def sample(metrics: ServiceMetrics, name: str, **labels) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_each_result_goes_to_its_own_item_and_batches_respect_bounds():
    runner, metrics = FakeRunner(), ServiceMetrics()
    b = make(runner, metrics)
    lengths = [3, 30, 5, 17, 8, 2, 16, 31, 4, 9, 12, 7]
    futures = [b.submit([enc(uid, n)])[0] for uid, n in enumerate(lengths)]
    rows = await gather(*futures)
    await b.stop()
    assert [(int(r[0]), int(r[1])) for r in rows] == list(enumerate(lengths))
    assert sorted(uid for batch in runner.batches for uid, _ in batch) == list(range(len(lengths)))
    for batch in runner.batches:
        assert len(batch) <= 4
        assert len(batch) * max(n for _, n in batch) <= 64
    assert sample(metrics, "rewardserve_items_total", model="m") == len(lengths)
    assert sample(metrics, "rewardserve_tokens_total", model="m") == sum(lengths)
    assert sample(metrics, "rewardserve_batch_size_count", model="m") == len(runner.batches)


async def test_waiting_items_are_grouped_by_length():
    runner = FakeRunner()
    runner.gate.clear()  # hold the first batch so the others queue up together
    b = make(runner, max_batch_items=4, max_batch_tokens=10_000)
    first = b.submit([enc(99, 1)])
    await asyncio.sleep(0.05)
    lengths = [40, 2, 41, 3, 42, 4, 43, 5]
    futures = b.submit([enc(uid, n) for uid, n in enumerate(lengths)])
    runner.gate.set()
    await gather(*first, *futures)
    await b.stop()
    groups = [sorted(n for _, n in batch) for batch in runner.batches[1:]]
    assert sorted(groups) == [[2, 3, 4, 5], [40, 41, 42, 43]]


@pytest.mark.parametrize("floor, expected", [(0.0, [[10, 10, 10, 60]]), (0.8, [[10, 10, 10], [60]])])
async def test_a_batch_grows_only_while_its_padding_stays_above_the_floor(floor, expected):
    runner = FakeRunner()
    runner.gate.clear()  # hold the first batch so the others queue up together
    b = make(runner, max_batch_items=8, max_batch_tokens=10_000, min_padding_efficiency=floor)
    first = b.submit([enc(99, 1)])
    await asyncio.sleep(0.05)
    futures = b.submit([enc(uid, n) for uid, n in enumerate([10, 10, 10, 60])])
    runner.gate.set()
    await gather(*first, *futures)
    await b.stop()
    # With the 60-token item, the 10s would run at 90 / 240 real tokens: the floor keeps them apart.
    assert [sorted(n for _, n in batch) for batch in runner.batches[1:]] == expected


async def test_max_wait_closes_a_partial_batch():
    runner = FakeRunner()
    b = make(runner, max_batch_items=64, max_wait_ms=10.0)
    rows = await gather(*b.submit([enc(1, 3), enc(2, 4)]))
    await b.stop()
    assert len(rows) == 2 and runner.batches == [[(1, 3), (2, 4)]]


async def test_cancelled_items_are_not_run():
    runner, metrics = FakeRunner(), ServiceMetrics()
    b = make(runner, metrics, max_wait_ms=50.0, max_batch_items=64)
    keep, drop = b.submit([enc(1, 3)]), b.submit([enc(2, 3)])
    drop[0].cancel()
    await gather(*keep)
    await b.stop()
    assert [uid for batch in runner.batches for uid, _ in batch] == [1]
    assert sample(metrics, "rewardserve_items_dropped_total", model="m", reason="cancelled") == 1


async def test_expired_items_fail_with_deadline_and_are_not_run():
    runner, metrics = FakeRunner(), ServiceMetrics()
    b = make(runner, metrics, max_wait_ms=50.0, max_batch_items=64)
    late = b.submit([enc(1, 3)], deadline=time.monotonic() + 0.001)
    ok = b.submit([enc(2, 3)], deadline=math.inf)
    with pytest.raises(DeadlineExpired):
        await late[0]
    await gather(*ok)
    await b.stop()
    assert [uid for batch in runner.batches for uid, _ in batch] == [2]
    assert sample(metrics, "rewardserve_items_dropped_total", model="m", reason="expired") == 1


async def test_runner_error_reaches_every_future_of_the_batch():
    runner = FakeRunner()
    runner.fail = RuntimeError("boom")
    b = make(runner, max_batch_items=3)
    results = await gather(*b.submit([enc(i, 3) for i in range(3)]), return_exceptions=True)
    await b.stop()
    assert all(isinstance(r, RuntimeError) and str(r) == "boom" for r in results)


async def test_wrong_number_of_outputs_fails_the_batch():
    runner = FakeRunner()
    runner.drop_one = True
    b = make(runner, max_batch_items=3)
    results = await gather(*b.submit([enc(i, 3) for i in range(3)]), return_exceptions=True)
    await b.stop()
    assert all(isinstance(r, RuntimeError) and "2 rows for a batch of 3" in str(r) for r in results)


async def test_bounded_queue_raises_queue_full():
    runner = FakeRunner()
    runner.gate.clear()
    b = make(runner, max_queue_items=5, max_batch_items=2)
    first = b.submit([enc(0, 3)])
    await asyncio.sleep(0.05)  # the first batch is now running (blocked); the queue is empty
    queued = b.submit([enc(i, 3) for i in range(1, 6)])
    with pytest.raises(QueueFull, match="queue full"):
        b.submit([enc(9, 3)])
    runner.gate.set()
    await gather(*first, *queued)
    await b.stop()


async def test_stop_runs_accepted_items_then_refuses_new_ones():
    runner, metrics = FakeRunner(), ServiceMetrics()
    b = make(runner, metrics, max_wait_ms=10_000.0, max_batch_items=64)  # only stop() flushes them
    futures = b.submit([enc(i, 3) for i in range(5)])
    await b.stop()
    assert all(f.done() and not f.cancelled() for f in futures)
    with pytest.raises(Unavailable):
        b.submit([enc(7, 3)])
    assert sample(metrics, "rewardserve_queue_depth", model="m") == 0


class FakeClock:
    """A monotonic clock the test moves by hand: no wall-clock timing in the assertions."""

    def __init__(self):
        self.now = 1024.0

    def __call__(self) -> float:
        return self.now


class QueueTimes:
    """Stands in for the queue-wait histogram: records every item's queue time."""

    def __init__(self):
        self.seconds: list[float] = []

    def labels(self, *_):
        return self

    def observe(self, value: float) -> None:
        self.seconds.append(value)


async def idle(metrics: ServiceMetrics) -> None:
    """Let the loop take what it may, and wait until no batch is running (batches take no fake time)."""
    for _ in range(5):
        await asyncio.sleep(0)
    while sample(metrics, "rewardserve_batches_in_flight", model="m"):
        await asyncio.sleep(0.001)
    for _ in range(5):
        await asyncio.sleep(0)


async def test_max_wait_is_a_bound_from_the_oldest_item_under_a_steady_trickle():
    # One item every ~1 ms against max_wait ~5 ms: restarting the wait on each arrival would hold
    # the batch until it is full (64 items, ~63 ms); the bound keeps every item within max_wait.
    # Steps of 2**-10 s keep the fake times exact in binary floating point.
    step = 2.0**-10
    runner, metrics, clock, times = FakeRunner(), ServiceMetrics(), FakeClock(), QueueTimes()
    metrics.queue_wait = times
    b = make(runner, metrics, max_batch_items=64, max_batch_tokens=10_000, max_wait_ms=5 * step * 1000, clock=clock)
    measured, uid = [], 0
    while uid < 200 or not all(f.done() for f in measured):  # the trickle outlasts the 200 measured items
        [future] = b.submit([enc(uid, 3)])
        if uid < 200:
            measured.append(future)
        uid += 1
        await idle(metrics)
        clock.now += step
    await gather(*measured)
    await b.stop()  # flushes the rest
    # One worker runs batches in the order they were formed, which is the order of the records.
    waited = dict(zip((u for batch in runner.batches for u, _ in batch), times.seconds, strict=True))
    assert max(waited[u] for u in range(200)) <= 5 * step
    assert max(len(batch) for batch in runner.batches) <= 6


async def test_a_hold_ends_a_selector_tick_before_max_wait():
    # The loop's selector sleeps whole milliseconds, rounded up, so a hold aimed at max_wait ends up
    # to 1 ms past it. Aimed HOLD_EARLY_S early, the item goes once the clock reaches that point;
    # aimed at max_wait, the clock standing there would hold it forever (gather fails).
    step = 2.0**-10
    runner, metrics, clock, times = FakeRunner(), ServiceMetrics(), FakeClock(), QueueTimes()
    metrics.queue_wait = times
    b = make(runner, metrics, max_batch_items=64, max_batch_tokens=10_000, max_wait_ms=8 * step * 1000, clock=clock)
    future = b.submit([enc(1, 3)])
    clock.now += 8 * step - HOLD_EARLY_S
    await gather(*future)
    await b.stop()
    assert times.seconds == [pytest.approx(8 * step - HOLD_EARLY_S)]


async def test_max_wait_zero_never_holds_a_partial_batch():
    runner, metrics, clock, times = FakeRunner(), ServiceMetrics(), FakeClock(), QueueTimes()
    metrics.queue_wait = times
    b = make(runner, metrics, max_batch_items=64, max_wait_ms=0.0, clock=clock)
    rows = await gather(*b.submit([enc(1, 3)]))  # the fake clock never moves: any hold would hang
    await b.stop()
    assert len(rows) == 1 and times.seconds == [0.0]


async def test_items_queued_while_every_worker_is_busy_go_the_moment_one_frees_up():
    step = 2.0**-10
    runner, metrics, clock, times = FakeRunner(), ServiceMetrics(), FakeClock(), QueueTimes()
    metrics.queue_wait = times
    runner.gate.clear()
    b = make(runner, metrics, max_batch_items=64, max_batch_tokens=10_000, max_wait_ms=5 * step * 1000,
             clock=clock, workers=1)
    first = b.submit([enc(0, 3)])
    clock.now += 5 * step  # the lone item's wait is over: it runs (and blocks the only worker)
    while not sample(metrics, "rewardserve_batches_in_flight", model="m"):
        await asyncio.sleep(0.001)
    later = []
    for uid in range(1, 4):  # a trickle while the worker is busy: 3 steps in all, under max_wait
        later += b.submit([enc(uid, 3)])
        await asyncio.sleep(0)
        clock.now += step
    runner.gate.set()
    # The clock stands still from here: holding the accumulated items for the rest of their
    # max_wait would never end (gather fails after 10 s); they must go when the worker frees up.
    await gather(*first, *later)
    await b.stop()
    assert [sorted(uid for uid, _ in batch) for batch in runner.batches] == [[0], [1, 2, 3]]
    # Each waited exactly for the batch ahead of it: from its arrival until the worker freed up.
    assert times.seconds == [5 * step, 3 * step, 2 * step, 1 * step]

