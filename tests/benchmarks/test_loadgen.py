"""The load generator against a real rewardserve subprocess: every request answered, server stats read."""

from __future__ import annotations

import asyncio

import pytest
from rewardserve.benchmarks.limit import measure_limit
from rewardserve.benchmarks.loadgen import LoadSpec, run_point
from rewardserve.benchmarks.server_proc import ServerProcess

from rewardserve.v1 import reward_pb2 as pb

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tiny, tmp_path_factory):
    s = ServerProcess.rewardserve(tiny["onnx"], "fp32", threads=1, max_batch_items=16, max_wait_ms=2.0,
                                  log_dir=tmp_path_factory.mktemp("logs"))
    with s.start(120):
        yield s


def test_closed_loop_answers_every_request_and_reads_server_metrics(server, workload):
    requests = workload.requests(items_per_request=2)
    before = server.snapshot()
    result = asyncio.run(run_point(server.target, requests, LoadSpec(concurrency=8, duration_s=1.0, warmup_s=0.2)))
    stats = server.snapshot().since(before)
    s = result.summary()
    assert s["error_count"] == 0
    assert s["requests"] == len(result.latencies_s) > 0
    assert s["items_per_s"] > 0 and s["tokens_per_s"] > s["items_per_s"]
    assert s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"] <= s["max_ms"]
    # The server scored at least the items of every recorded request (warm-up ones too).
    assert stats["server_items"] >= 2 * s["requests"]
    assert 0 < stats["padding_efficiency"] <= 1
    assert stats["mean_batch_size"] >= 1
    assert stats["server_cpu_cores"] > 0


def test_open_loop_sends_at_the_asked_rate(server, workload):
    spec = LoadSpec(rate_rps=100.0, duration_s=1.0, warmup_s=0.2, seed=1)
    result = asyncio.run(run_point(server.target, workload.requests(1), spec))
    s = result.summary()
    assert s["mode"] == "open" and s["error_count"] == 0
    assert 50 <= s["requests"] <= 160  # Poisson(100) arrivals in one second, every one answered


def test_errors_are_counted_by_status_code(server):
    bad = [(pb.ScoreRequest(items=[pb.Item(text="hi")], options=pb.ScoreOptions(model="nope")), 1, 3)]
    result = asyncio.run(run_point(server.target, bad, LoadSpec(concurrency=2, duration_s=0.3, warmup_s=0.0)))
    s = result.summary()
    assert s["requests"] == 0 and s["items"] == 0
    assert set(s["errors"]) == {"NOT_FOUND"} and s["error_count"] > 0


def test_limit_picks_the_best_batch_size(tiny, workload):
    limit = measure_limit(tiny["onnx"], "fp32", workload.encoded, threads=1, batch_sizes=(1, 8), min_time_s=0.2)
    assert limit["best_batch_size"] in (1, 8)
    assert limit["items_per_s"] == max(v["items_per_s"] for v in limit["by_batch_size"].values())
    assert 0 < limit["padding_efficiency"] <= 1
