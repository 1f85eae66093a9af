"""The profile summary: py-spy raw stacks -> per-thread shares and the loop thread's top frames."""

from __future__ import annotations

from rewardserve.benchmarks.profile_server import cpu_by_thread, report, summarize, thread_names

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


DUMP = '''Process 12543: python -m rewardserve.benchmarks.server_proc {}
Python v3.11.7 (/usr/bin/python3.11)

Thread 12543 (idle): "MainThread"
    select (selectors.py:468)
Thread 12603 (active): "prepare_0"
    encode_batch (service/engine/encoding.py:105)
'''


def test_threads_are_named_from_py_spy_dump_and_charged_per_request():
    names = thread_names(DUMP)
    assert names == {12543: "MainThread", 12603: "prepare_0"}
    before, after = {12543: 1.0, 12603: 0.5, 12999: 0.0}, {12543: 1.5, 12603: 0.7, 12999: 0.1, 13000: 0.2}
    cpu = {t: round(us, 6) for t, us in cpu_by_thread(before, after, names, requests=1000)}
    # 0.5 s over 1,000 requests is 500 us each; threads py-spy does not name are pooled as native
    assert cpu == {"MainThread": 500.0, "prepare_0": 200.0, "native (gRPC core, runtime pools)": 300.0}


def test_the_report_lists_cpu_per_thread_when_measured():
    text = report(RAW, {"items/s": 1.0}, cpu=[("MainThread", 812.4), ("prepare_0", 180.0)])
    assert "| MainThread | 812 |" in text and "| prepare_0 | 180 |" in text
