"""The bench's new parts without a model: options, the channel rule, histogram quantiles, trickle rates,
and CPU accounting over a process tree."""

from __future__ import annotations

import argparse
import subprocess
import sys

import psutil
import pytest
from rewardserve.benchmarks.client_pool import shares, total_channels
from rewardserve.benchmarks.config import BenchConfig
from rewardserve.benchmarks.cpu_meter import TreeCpu
from rewardserve.benchmarks.loadgen import LoadSpec
from rewardserve.benchmarks.scrape import bucket_delta, parse, quantile
from rewardserve.benchmarks.trickle import judge, rates


def _parse(*argv: str) -> BenchConfig:
    from rewardserve.benchmarks.cli import config_from_args, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return config_from_args(parser.parse_args(["bench", *argv]))


def test_new_options_parse():
    c = _parse("--tiny", "--client-procs", "4", "--server-processes", "2", "--protocols", "grpc,http",
               "--suites", "sweep,trickle", "--trickle-wait-ms", "auto,5", "--torch-dtypes", "bf16",
               "--serve-rm", "off", "--no-noop", "--no-other-backends", "--concurrency", "1,256")
    assert c.tiny and c.bundle is None and c.variants == ("fp32",)  # the tiny bundle has only fp32
    assert (c.client_procs, c.server_processes) == (4, 2)
    assert c.protocols == ("grpc", "http") and c.suites == ("sweep", "trickle")
    assert c.trickle_wait_ms == ("auto", "5") and c.trickle_multiples == (4.0, 2.0, 1.0)
    assert c.torch_dtypes == ("bf16",) and c.serve_rm == "off"
    assert not c.noop_baseline and not c.other_backends_baseline
    assert c.reference_concurrency == 256  # 64 not swept: the largest point


@pytest.mark.parametrize("kwargs, message", [
    ({}, "bundle is required"),
    ({"bundle": "b", "protocols": "grpc,smtp"}, "protocols must list some of"),
    ({"bundle": "b", "client_procs": 0}, "client_procs must be >= 1"),
    ({"bundle": "b", "serve_rm": "maybe"}, "serve_rm must be auto, on or off"),
    ({"bundle": "b", "suites": "soak"}, "suites must list some of"),
    ({"bundle": "b", "ratio_concurrency": 7}, "ratio_concurrency 7 is not in concurrency"),
])
def test_new_rules_are_stated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BenchConfig(**kwargs)


@pytest.mark.parametrize("clients, server_procs, procs", [(256, 1, 4), (256, 2, 3), (1, 2, 4), (16, 4, 2)])
def test_at_least_eight_channels_per_server_process(clients, server_procs, procs):
    spec = LoadSpec(concurrency=clients)
    total = total_channels(spec, server_procs)
    assert total == min(clients, max(8 * server_procs, -(-clients // 64)))
    parts = shares(spec, total, procs)
    assert sum(s.concurrency for s, _ in parts) == clients  # every client placed, none idle
    assert all(1 <= ch <= s.concurrency for s, ch in parts)
    assert sum(ch for _, ch in parts) >= min(clients, 8 * server_procs) - len(parts)  # rounding per process


def test_open_loop_rate_is_split_with_distinct_seeds():
    parts = shares(LoadSpec(rate_rps=900.0, seed=3), total_channels(LoadSpec(rate_rps=900.0), 2), 3)
    assert sum(s.rate_rps for s, _ in parts) == pytest.approx(900.0)
    assert len({s.seed for s, _ in parts}) == 3 and sum(ch for _, ch in parts) >= 16


EXPOSITION = """\
# TYPE rewardserve_queue_wait_seconds histogram
rewardserve_queue_wait_seconds_bucket{model="a",le="0.001"} %d
rewardserve_queue_wait_seconds_bucket{model="a",le="0.005"} %d
rewardserve_queue_wait_seconds_bucket{model="a",le="+Inf"} %d
rewardserve_queue_wait_seconds_count{model="a"} %d
rewardserve_queue_wait_seconds_sum{model="a"} 0.1
# TYPE rewardserve_items counter
rewardserve_items_total{model="a"} %d
"""


def test_histogram_deltas_and_quantiles():
    before = parse(EXPOSITION % (10, 10, 10, 10, 10))
    after = parse(EXPOSITION % (10 + 90, 10 + 99, 10 + 100, 110, 110))
    assert after[0]["items"] == 110
    delta = bucket_delta(after[1], before[1], "rewardserve_queue_wait_seconds")
    assert delta == {0.001: 90, 0.005: 99, float("inf"): 100}
    q50 = quantile(delta, 0.5)
    assert q50["upper_bound_s"] == 0.001 and q50["value_s"] == pytest.approx(0.001 * 50 / 90)
    q99 = quantile(delta, 0.99)
    assert q99["upper_bound_s"] == 0.005 and q99["lower_bound_s"] == 0.001 and q99["count"] == 100
    assert quantile(delta, 1.0)["upper_bound_s"] == float("inf")
    assert quantile({}, 0.99)["count"] == 0


def test_trickle_rates_and_bar():
    assert rates(0.0, (4, 2, 1), 5.0) == [(4, 800.0), (2, 400.0), (1, 200.0)]  # wait 0: the 5 ms period
    assert rates(10.0, (4, 1), 5.0) == [(4, 400.0), (1, 100.0)]
    point = {"queue_p99": {"value_s": 0.004, "upper_bound_s": 0.005, "count": 50},
             "inference_p99": {"value_s": 0.0008, "upper_bound_s": 0.001, "count": 40}}
    assert judge(point, 5.0)["met"] and judge(point, 5.0)["bound_ms"] == pytest.approx(6.0)
    assert not judge(point, 0.0)["met"]  # queue p99 <= 5 ms is not within 0 + 1 ms


BURN = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time\\nt=time.process_time()\\nwhile time.process_time()-t<0.3: pass\\nprint('burnt', flush=True)\\ntime.sleep(60)"], stdout=subprocess.PIPE, text=True)
child.stdout.readline()
print(child.pid, flush=True)
time.sleep(60)
"""


def test_cpu_meter_counts_live_children():
    root = subprocess.Popen([sys.executable, "-c", BURN], stdout=subprocess.PIPE, text=True)
    try:
        child = psutil.Process(int(root.stdout.readline()))
        child_cpu = sum(child.cpu_times()[:2])
        t = psutil.Process(root.pid).cpu_times()
        root_only = t.user + t.system + t.children_user + t.children_system  # what psutil alone reports
        meter = TreeCpu(root.pid)
        assert meter.count() == 2
        assert child_cpu >= 0.3
        assert meter.cpu_s() >= root_only + child_cpu - 1e-6  # the live child's 0.3 s counted
    finally:
        for p in psutil.Process(root.pid).children(recursive=True):
            p.kill()
        root.kill()
        root.wait()


def test_batching_server_keeps_its_own_max_wait_unless_told(tmp_path):
    import json

    from rewardserve.benchmarks.server_proc import ServerProcess

    assert BenchConfig(bundle="b").max_wait_ms is None  # the server's auto (0 on CPU), not a bench-chosen 5 ms
    auto = json.loads(ServerProcess.rewardserve(tmp_path, "fp32", 0, 64, None, tmp_path).argv[-1])
    told = json.loads(ServerProcess.rewardserve(tmp_path, "fp32", 0, 64, 5.0, tmp_path, http=True).argv[-1])
    assert "max_wait_ms" not in auto and "http_port" not in auto and "engine" not in auto
    assert told["max_wait_ms"] == 5.0 and told["http_port"] > 0
    shared = json.loads(ServerProcess.rewardserve(tmp_path, "fp32", 0, 64, None, tmp_path, engine="shared").argv[-1])
    assert shared["engine"] == "shared"  # --server-engine reaches the server's config


def test_served_combinations_auto_and_bf16(tmp_path):
    import json

    from rewardserve.benchmarks.server_proc import ServerProcess

    c = _parse("--bundle", "b", "--variants", "auto,bf16,int8", "--server-backend", "openvino")
    assert c.variants == ("auto", "bf16", "int8") and c.server_backend == "openvino"
    assert [c.onnx_file(v, "int8") for v in c.variants] == ["int8", "fp32", "int8"]  # each one's ORT limit file
    auto = json.loads(ServerProcess.rewardserve(tmp_path, "auto", 0, 64, None, tmp_path, backend="openvino").argv[-1])
    assert "precision" not in auto and auto["backend"] == "openvino"  # the server chooses the precision
    with pytest.raises(ValueError, match="server_backend must be auto, onnxruntime or openvino"):
        BenchConfig(bundle="b", server_backend="tvm")
    with pytest.raises(ValueError, match="server_engine must be auto, per-process or shared"):
        BenchConfig(bundle="b", server_engine="global")
    with pytest.raises(ValueError, match="variants must be among"):
        BenchConfig(bundle="b", variants="fp8")


def test_the_noop_ceiling_runs_as_many_processes_as_the_server_it_is_compared_with(monkeypatch):
    from rewardserve.benchmarks import run

    monkeypatch.setattr(run, "server_processes_default", lambda: 2)  # what rewardserve's auto gives here
    assert run.noop_processes(BenchConfig(bundle="b")) == 2  # was 1: a 1-process ceiling for a 2-process server
    assert run.noop_processes(BenchConfig(bundle="b", server_processes=3)) == 3
