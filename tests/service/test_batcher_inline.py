"""The batcher runs a batch measured quick on the event loop, a slow one on a worker thread."""

from __future__ import annotations

import threading
import time

import pytest
from rewardserve.service.engine.batcher import Batcher

from .test_batcher import FakeRunner, enc, gather, make


class ThreadRecorder(FakeRunner):
    """A FakeRunner that records which thread ran each batch, and can sleep to look slow."""

    def __init__(self):
        super().__init__()
        self.threads: list[threading.Thread] = []
        self.sleep_s = 0.0

    def __call__(self, items):
        self.threads.append(threading.current_thread())
        time.sleep(self.sleep_s)
        return super().__call__(items)


async def run_one(b: Batcher, uid: int) -> None:
    await gather(*b.submit([enc(uid, 8)]))


async def test_a_batch_measured_quick_runs_on_the_event_loop_and_a_slow_one_on_a_worker():
    runner, loop_thread = ThreadRecorder(), threading.current_thread()
    b = make(runner, max_wait_ms=0.0, inline_max_ms=50.0)
    for uid in range(3):  # the first batch is not measured yet: a worker; then ~0 s per token: inline
        await run_one(b, uid)
    runner.sleep_s = 0.4  # 0.4 s for 8 tokens: the estimate (an EWMA, 0.2 of the last) goes above 50 ms
    await run_one(b, 3)  # still expected quick (so it runs inline) and measured slow
    await run_one(b, 4)
    await b.stop()
    assert [t is loop_thread for t in runner.threads] == [False, True, True, True, False]


async def test_batches_never_run_on_the_event_loop_while_max_wait_holds_them():
    # A batch on the loop would hide the arrivals during it: they would count their wait from
    # after it and be held again, instead of going the moment it ends.
    runner, loop_thread = ThreadRecorder(), threading.current_thread()
    b = make(runner, max_wait_ms=1.0, inline_max_ms=50.0)
    for uid in range(4):  # measured quick after the first: inline if holds allowed it
        await run_one(b, uid)
    await b.stop()
    assert len(runner.threads) == 4 and all(t is not loop_thread for t in runner.threads)


async def test_inline_max_ms_zero_runs_every_batch_on_a_worker():
    runner, loop_thread = ThreadRecorder(), threading.current_thread()
    b = make(runner, max_wait_ms=0.0)
    for uid in range(3):
        await run_one(b, uid)
    await b.stop()
    assert runner.threads and all(t is not loop_thread for t in runner.threads)


async def test_a_failing_inline_batch_fails_its_items_and_the_batcher_goes_on():
    runner = ThreadRecorder()
    b = make(runner, max_wait_ms=0.0, inline_max_ms=50.0)
    await run_one(b, 0)  # measured: the next batches run inline
    runner.fail = RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        await run_one(b, 1)
    runner.fail = None
    await run_one(b, 2)
    await b.stop()
    assert runner.threads[1] is threading.current_thread() and len(runner.batches) == 3


async def test_an_inline_batch_counts_from_its_start_for_the_drain_rate():
    from rewardserve.service.metrics import DrainMeter

    runner = ThreadRecorder()
    b = make(runner, max_wait_ms=0.0, inline_max_ms=1000.0)
    await run_one(b, 0)  # measured quick: the next one runs inline
    b.drain = DrainMeter(window_s=60.0)  # only the slow batch below in the window
    runner.sleep_s = 0.3
    await run_one(b, 1)
    rate = b.drain.rate()
    await b.stop()
    assert runner.threads[1] is threading.current_thread()
    assert rate is not None and rate <= 1 / 0.3 + 0.01  # 1 item over >= 0.3 s, not over an instant
