"""The dynamic batcher: one per model, shared by every concurrent request.

Built like Ray Serve's ``_BatchQueue``: requests put (item, future) pairs in one queue (the
future created first) and await their futures; one background task forms batches and runs
them in worker threads. While every worker is busy, items accumulate, and the next batch goes
the moment one frees up. When a worker is free, a partial batch is held to let it grow until
it holds ``max_batch_items`` items or ``max_batch_tokens`` padded tokens, but never longer than
``max_wait_ms`` after the OLDEST queued item arrived (a new arrival does not restart the wait;
0: never hold). Waiting items are sorted by length and each batch is built around the oldest
item from its nearest neighbours in length while real / padded tokens stay at least
``min_padding_efficiency``, so no item starves. Cancelled and expired items are dropped first.
A batch expected to take at most ``inline_max_ms`` runs on the event loop itself (on a small
model the hand-off to a worker thread and back costs more than the model), unless batches are
held: then the loop must see the arrivals during a batch, to send them the moment it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from rewardserve.service.domain import Encoded
from rewardserve.service.engine.grouping import around_oldest
from rewardserve.service.errors import DeadlineExpired, QueueFull, Unavailable
from rewardserve.service.metrics import DrainMeter, ServiceMetrics

logger = logging.getLogger(__name__)
RESTART_DELAY_S = 0.5  # before a dead batcher loop is restarted: one that dies at once does not spin
HOLD_EARLY_S = 0.001  # epoll's granularity: a hold aimed at max_wait would end up to 1 ms past it
RunBatch = Callable[[Sequence[Encoded]], np.ndarray]
Rows = Callable[[np.ndarray], Sequence]  # a batch's logits -> what each item's future gets (in the worker)
Clock = Callable[[], float]  # seconds, monotonic: time.monotonic, or a fake one in tests


@dataclass(slots=True, eq=False)  # identity, not field, equality: items hold arrays
class _Pending:
    item: Encoded
    future: asyncio.Future
    enqueued: float  # the batcher's clock()
    deadline: float  # clock() time by which the item must have run; inf for none


_STOP = object()  # sentinel: no item follows it; the loop drains what precedes and exits


class Batcher:
    """Collects items from concurrent requests into length-grouped batches for one model.

    Example::

        batcher = Batcher("hh", runner.run, metrics, max_batch_items=64, max_batch_tokens=16384,
                          max_wait_ms=5, max_queue_items=4096)
        batcher.start()
        futures = batcher.submit(encoded_items, deadline=time.monotonic() + 10)
        rows = await asyncio.gather(*futures)  # one logits row per item
        await batcher.stop()                   # runs what was accepted, then returns
    """

    # Tokens a batch of items of these lengths runs: items x the longest, or a backend's (buckets, packed rows).
    padded_tokens = staticmethod(lambda lengths: len(lengths) * max(lengths))

    def __init__(self, name: str, run_batch: RunBatch, metrics: ServiceMetrics, *, max_batch_items: int,
                 max_batch_tokens: int, max_wait_ms: float, max_queue_items: int, workers: int = 1,
                 min_padding_efficiency: float = 0.0, inline_max_ms: float = 0.0, rows: Rows | None = None,
                 clock: Clock = time.monotonic):
        self.name = name
        self.run_batch = run_batch
        self.rows = rows  # per-batch post-processing, off the event loop (None: the logits rows)
        self._metrics = metrics
        self.max_batch_items = max_batch_items
        self.max_batch_tokens = max_batch_tokens
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue_items = max_queue_items
        self.min_padding_efficiency = min_padding_efficiency
        # Inline: padded tokens x measured seconds per padded token (an EWMA) within inline_max_ms.
        self.inline_max_s, self._seconds_per_token = inline_max_ms / 1000.0, None
        self._clock = clock
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=f"infer-{name}")
        self._workers, self._slots = workers, asyncio.Semaphore(workers)  # batches in flight; the rest wait
        self._queue: deque = deque()
        self._queued_tokens, self._wakeup, self._closed = 0, asyncio.Event(), False
        self._task: asyncio.Task | None = None
        # Called (in the event loop) with the batcher and the error when its loop dies; the
        # server uses it to turn health NOT_SERVING and restart the loop or exit.
        self.on_failure: Callable[[Batcher, BaseException], None] | None = None
        self.drain = DrainMeter()  # items/s finished: back-pressure answers say when to come back
        # Set on every change (not set_function, which prometheus_client's multiprocess mode lacks).
        self._depth_gauge = metrics.queue_depth.labels(name)
        self._queue_wait = metrics.queue_wait.labels(name)  # per item: resolve the labels once
        self._in_flight, self._observe_batch = metrics.batches_in_flight.labels(name), metrics.batch_observer(name)

    @property
    def depth(self) -> int:
        """Items waiting (cancelled ones included until the loop skips them)."""
        return len(self._queue) - (1 if self._queue and self._queue[-1] is _STOP else 0)

    def start(self) -> None:
        """Start the background task (call from the event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.name}")
        self._task.add_done_callback(self._on_loop_end)

    @property
    def alive(self) -> bool:
        """Whether the background task is running."""
        return self._task is not None and not self._task.done()

    def restart(self) -> None:
        """Start a fresh loop after the last one died (the items it held were failed)."""
        if self.alive:
            return
        self._closed = False
        self.start()
        logger.warning("batcher %s restarted", self.name)

    def _on_loop_end(self, task: asyncio.Task) -> None:
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        self._closed = True  # new requests get UNAVAILABLE instead of waiting for nothing
        logger.critical("batcher %s died", self.name, exc_info=error)
        for p in self._queue:
            if p is not _STOP and not p.future.done():
                p.future.set_exception(Unavailable(f"model {self.name}: batcher stopped"))
        self._queue.clear()
        self._queued_tokens = 0
        if self.on_failure is not None:
            self.on_failure(self, error)

    def check_room(self, count: int) -> None:
        """Raise Unavailable when stopping, QueueFull when ``count`` more items do not fit now."""
        if self._closed:
            raise Unavailable(f"model {self.name} is shutting down")
        if self.depth + count > self.max_queue_items:
            raise QueueFull(f"model {self.name}: queue full ({self.depth} items waiting, limit {self.max_queue_items}); "
                            "retry later", retry_after_s=self.retry_after_s())

    def retry_after_s(self) -> float | None:
        """Seconds until the items waiting now have run, at the measured drain rate (None: no batch yet)."""
        return self.drain.seconds_to_drain(self.depth)

    def submit(self, items: Sequence[Encoded], deadline: float = math.inf) -> list[asyncio.Future]:
        """Queue items; return one future per item resolving to its row (the logits row, or ``rows``' output)."""
        self.check_room(len(items))
        loop = asyncio.get_running_loop()
        now = self._clock()
        futures = [loop.create_future() for _ in items]  # before enqueueing: nothing can miss its result
        self._queue.extend(_Pending(it, f, now, deadline) for it, f in zip(items, futures, strict=True))
        self._queued_tokens += sum(it.num_tokens for it in items)
        self._depth_gauge.set(self.depth)
        self._wakeup.set()
        return futures

    async def stop(self) -> None:
        """Refuse new items, run every accepted one, and wait for the loop to end."""
        if self._task is None:
            return
        if self._task.done():  # died (or already stopped): nothing will run
            self._closed = True
            self._executor.shutdown(wait=False)
            return
        if self._closed:
            return
        self._closed = True
        self._queue.append(_STOP)
        self._wakeup.set()
        await self._task
        self._executor.shutdown(wait=True)

    # ------------------------------------------------------------------ loop
    async def _loop(self) -> None:
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            if self._queue[0] is _STOP:
                break
            # Every worker busy: what queues meanwhile goes the moment one frees up, unheld.
            all_busy = self._slots.locked()
            await self._slots.acquire()
            try:
                if not all_busy:
                    await self._hold()
                batch = self._take_batch()
            except BaseException:
                self._slots.release()
                raise
            if not batch:
                self._slots.release()
                continue
            self._in_flight.inc()  # the batch holds its slot until _finish
            started = time.monotonic()
            if self._runs_inline(batch):  # cheaper than the thread hand-off and the wake-up back
                self._finish(batch, *self._run(batch), started)
                await asyncio.sleep(0)  # the answered requests go out before the next batch forms
            else:
                self._executor.submit(self._work, asyncio.get_running_loop(), batch, started)
        for _ in range(self._workers):  # every running batch has finished once all slots are free
            await self._slots.acquire()
        logger.debug("batcher %s stopped", self.name)

    def _full(self) -> bool:
        stopping = self._queue[-1] is _STOP
        return stopping or self.depth >= self.max_batch_items or self._queued_tokens >= self.max_batch_tokens

    async def _hold(self) -> None:
        """Let a partial batch grow: until full or stopping, at most max_wait after the oldest item arrived."""
        # Fixed: arrivals never push it back. Aimed early: the loop's selector sleeps whole ms, rounded up.
        until = self._queue[0].enqueued + self.max_wait_s - min(HOLD_EARLY_S, self.max_wait_s / 2)
        loop = asyncio.get_running_loop()
        while not self._full() and (remaining := until - self._clock()) > 0:
            # A timer that sets the event, not wait_for, which needs more loop turns to cancel its task.
            self._wakeup.clear()
            timer = loop.call_later(remaining, self._wakeup.set)
            try:
                await self._wakeup.wait()  # woken by an arrival or the timer: the clock decides
            finally:
                timer.cancel()

    def _take_batch(self) -> list[_Pending]:
        """Drop cancelled and expired items; remove and return the next batch."""
        now = self._clock()
        stopping = self._queue[-1] is _STOP
        live: list[_Pending] = []
        for p in self._queue:
            if p is _STOP:
                continue
            if p.future.done():  # cancelled by its request
                self._metrics.dropped.labels(self.name, "cancelled").inc()
            elif p.deadline <= now:
                p.future.set_exception(DeadlineExpired(f"deadline passed after {now - p.enqueued:.3f}s in queue"))
                self._metrics.dropped.labels(self.name, "expired").inc()
            else:
                live.append(p)
        batch = around_oldest(live, lambda p: p.item.num_tokens, max_items=self.max_batch_items,
                              max_tokens=self.max_batch_tokens, min_padding_efficiency=self.min_padding_efficiency)
        chosen = {id(p) for p in batch}
        rest = [p for p in live if id(p) not in chosen]  # FIFO order kept: rest[0] is next anchor
        self._queue = deque(rest + ([_STOP] if stopping else []))
        self._queued_tokens = sum(p.item.num_tokens for p in rest)
        self._depth_gauge.set(self.depth)
        for p in batch:  # queue time ends when the batch is formed (a worker is free for it)
            self._queue_wait.observe(now - p.enqueued)
        return batch

    def _runs_inline(self, batch: list[_Pending]) -> bool:
        """Whether ``batch`` is expected (from the batches measured so far) to run within inline_max_ms.

        Never with max_wait > 0: arrivals hidden by a batch on the loop would count from after it, and wait again.
        """
        if not self.inline_max_s or self.max_wait_s or self._seconds_per_token is None:
            return False
        padded = self.padded_tokens([p.item.num_tokens for p in batch])
        return padded * self._seconds_per_token <= self.inline_max_s

    def _run(self, batch: list[_Pending]) -> tuple[list[Encoded], Sequence | Exception, float]:
        """Run a batch: its items, their rows (or the error) and the seconds inference took."""
        items = [p.item for p in batch]
        start = time.perf_counter()
        try:
            logits = self.run_batch(items)
            seconds = time.perf_counter() - start
            if len(logits) != len(batch):
                raise RuntimeError(f"runner returned {len(logits)} rows for a batch of {len(batch)} items")
            return items, logits if self.rows is None else self.rows(logits), seconds
        except Exception as e:
            return items, e, 0.0

    def _work(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending], started: float) -> None:
        """In a worker thread: run a batch and hand the result to the loop (no task, no future chain)."""
        done = self._run(batch)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits for this batch
            loop.call_soon_threadsafe(self._finish, batch, *done, started)

    def _finish(self, batch: list[_Pending], items: list[Encoded], out: Sequence | Exception, seconds: float,
                started: float) -> None:
        """In the loop: free the slot, record the batch, resolve its items' futures."""
        self._in_flight.dec()
        self._slots.release()
        if isinstance(out, Exception):
            logger.error("batch of %d items failed on model %s", len(batch), self.name, exc_info=out)
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(out)
            return
        padded = self.padded_tokens([it.num_tokens for it in items])  # bucket rounding counts
        self._observe_batch(len(items), sum(it.num_tokens for it in items), padded, seconds)
        per_token, last = seconds / padded, self._seconds_per_token
        self._seconds_per_token = per_token if last is None else 0.8 * last + 0.2 * per_token
        self.drain.record(len(items), started)  # the drain meter's own clock: time.monotonic
        for p, row in zip(batch, out, strict=True):
            if not p.future.done():
                p.future.set_result(row)
