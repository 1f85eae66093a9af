"""The profile summary: py-spy raw stacks -> per-thread shares and the loop thread's top frames."""

from __future__ import annotations

from rewardserve.benchmarks.profile_server import report, summarize

RAW = """thread (1): MainThread;run (asyncio/base_events.py:607);Score (service/edge/servicer.py:82);encode (x.py:1) 3
thread (1): MainThread;run (asyncio/base_events.py:607);select (selectors.py:468) 1
thread (2): infer-tiny_0;_worker (thread.py:81);run (ort.py:118) 4
not a sample line
"""


def test_summarize_counts_threads_self_and_inclusive_frames_of_the_loop_thread():
    threads, own, inclusive, main = summarize(RAW)
    assert threads == {"thread (1): MainThread": 4, "thread (2): infer-tiny_0": 4}
    assert main == 4
    assert own == {"encode (x.py:1)": 3, "select (selectors.py:468)": 1}
    assert inclusive["run (asyncio/base_events.py:607)"] == 4 and inclusive["Score (service/edge/servicer.py:82)"] == 3
    assert "run (ort.py:118)" not in inclusive  # another thread's frames stay out of the loop's table


def test_report_gives_shares_in_percent():
    text = report(RAW, {"items/s": 1234.5, "clients": 256})
    assert "items/s: 1234.5" in text and "| thread (1): MainThread | 50.0% |" in text
    assert "| 75.0% | `encode (x.py:1)` |" in text and "| 100.0% | `run (asyncio/base_events.py:607)` |" in text
