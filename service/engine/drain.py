"""How fast a model's queue drains: items completed per second over a sliding window.

The batcher records each finished batch (:meth:`DrainMeter.record`); back-pressure answers
(HTTP ``Retry-After``, gRPC ``grpc-retry-pushback-ms``) divide the items waiting by this rate,
so a client told to come back returns about when the queue ahead of it has run, not after a
constant guess.

Example::

    meter = DrainMeter(window_s=5.0)
    meter.record(items=16, started=t0)   # a batch that began at t0 (time.monotonic()) just ended
    meter.seconds_to_drain(64)           # 64 items / measured items per second; None before any batch
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class DrainMeter:
    """Items finished per second over the last ``window_s`` seconds of batches."""

    def __init__(self, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self._clock = clock
        self._batches: deque[tuple[float, float, int]] = deque()  # (started, finished, items)

    def record(self, items: int, started: float) -> None:
        """Count a batch of ``items`` that began at ``started`` and has just finished."""
        now = self._clock()
        self._batches.append((started, now, items))
        self._prune(now)

    def _prune(self, now: float) -> None:
        while self._batches and self._batches[0][1] < now - self.window_s:
            self._batches.popleft()

    def rate(self) -> float | None:
        """Items per second over the window (from the first batch's start in it); None without data."""
        now = self._clock()
        self._prune(now)
        if not self._batches:
            return None
        span = max(now - self._batches[0][0], 1e-3)  # wall time the window's batches cover
        return sum(b[2] for b in self._batches) / span

    def seconds_to_drain(self, items: int) -> float | None:
        """Time for ``items`` queued items to run at the measured rate; None before any batch ran."""
        rate = self.rate()
        return None if rate is None else items / rate
