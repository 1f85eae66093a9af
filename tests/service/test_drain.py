"""The drain meter behind Retry-After and grpc-retry-pushback-ms: items/s over a sliding window."""

from __future__ import annotations

import pytest
from rewardserve.service.metrics import DrainMeter


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_is_items_over_the_wall_time_the_window_covers():
    clock = Clock()
    meter = DrainMeter(window_s=5.0, clock=clock)
    assert meter.rate() is None and meter.seconds_to_drain(10) is None  # nothing ran yet
    clock.now = 100.5
    meter.record(50, started=100.0)  # 50 items in 0.5 s
    clock.now = 101.0
    meter.record(50, started=100.5)  # and 50 more in the next 0.5 s
    assert meter.rate() == pytest.approx(100.0)
    assert meter.seconds_to_drain(250) == pytest.approx(2.5)


def test_old_batches_leave_the_window():
    clock = Clock()
    meter = DrainMeter(window_s=5.0, clock=clock)
    clock.now = 101.0
    meter.record(1000, started=100.0)  # fast, long ago
    clock.now = 110.0
    meter.record(10, started=109.0)  # slow, now: only this one counts
    assert meter.rate() == pytest.approx(10.0)
    clock.now = 120.0
    assert meter.rate() is None
