"""The load generator's new modes against real servers: the no-op RewardService, K client processes,
and OpenRLHF-style HTTP (a new connection per request) against the tiny bundle."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import grpc
import pytest
from rewardserve.benchmarks.client_pool import ClientPool
from rewardserve.benchmarks.http_client import openrlhf_body
from rewardserve.benchmarks.loadgen import LoadSpec, run_point
from rewardserve.benchmarks.server_proc import ServerProcess

from rewardserve.v1 import reward_pb2 as pb
from rewardserve.v1 import reward_pb2_grpc

pytestmark = pytest.mark.e2e


def test_noop_server_answers_grpc_and_http_from_every_process(tmp_path):
    import psutil

    with ServerProcess.noop(tmp_path, processes=2, http=True).start(60) as noop:
        with grpc.insecure_channel(noop.target) as channel:
            answer = reward_pb2_grpc.RewardServiceStub(channel).Score(
                pb.ScoreRequest(items=[pb.Item(text="anything")]), timeout=10)
        assert len(answer.scores) == 1 and answer.model == "noop"
        body = json.dumps(openrlhf_body(["a", "b"])).encode()
        req = urllib.request.Request(noop.url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.loads(r.read())["rewards"] == [0.0, 0.0]
        before = noop.snapshot()
        assert before.processes >= 2  # the parent and its child (and multiprocessing's helper), all counted
        result = asyncio.run(run_point(noop.target, [(pb.ScoreRequest(items=[pb.Item(text="x")]), 1, 1)],
                                       LoadSpec(concurrency=4, duration_s=0.5, warmup_s=0.1)))
        stats = noop.snapshot().since(before)
        assert result.summary()["error_count"] == 0 and result.handled >= result.requests > 0
        assert stats["server_cpu_s"] > 0 and stats["server_processes_seen"] >= 2
        tree = noop._cpu.processes()
    assert not [p.pid for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]  # stop ends them all


@pytest.fixture(scope="module")
def server(tiny, tmp_path_factory):
    s = ServerProcess.rewardserve(tiny["onnx"], "fp32", threads=1, max_batch_items=16, max_wait_ms=None,
                                  log_dir=tmp_path_factory.mktemp("logs"), http=True)
    with s.start(120):
        yield s


@pytest.fixture(scope="module")
def pool(workload):
    requests = workload.requests(1)
    http = [(openrlhf_body([m.items[0].text]), n, t) for m, n, t in requests]
    with ClientPool(2, {"grpc": requests, "http": http}) as p:
        yield p


def test_client_processes_share_one_point(server, pool):
    before = server.snapshot()
    result = pool.run(server.target, "grpc", LoadSpec(concurrency=8, duration_s=1.0, warmup_s=0.2), server_processes=1)
    stats = server.snapshot().since(before)
    s = result.summary()
    assert s["client_procs"] == 2 and s["connections"] == 8  # >= 8 channels per server process, spread
    assert s["concurrency"] == 8 and s["error_count"] == 0 and s["requests"] > 0
    assert stats["server_items"] >= s["requests"]  # the server scored every recorded request (and warm-up ones)


def test_http_opens_a_connection_per_request_and_gets_rewards(server, pool):
    before = server.snapshot()
    result = pool.run(server.url, "http", LoadSpec(concurrency=4, duration_s=1.0, warmup_s=0.2))
    stats = server.snapshot().since(before)
    s = result.summary()
    assert s["error_count"] == 0 and s["requests"] > 0 and s["connections"] == 0
    assert s["p50_ms"] <= s["p99_ms"]
    assert stats["server_items"] >= s["requests"]


def test_open_loop_across_processes(server, pool):
    result = pool.run(server.target, "grpc", LoadSpec(rate_rps=100.0, duration_s=1.0, warmup_s=0.2, seed=2))
    s = result.summary()
    assert s["mode"] == "open" and s["error_count"] == 0
    assert 50 <= s["requests"] <= 160  # Poisson(100) arrivals in one second across both processes


def test_the_bench_server_runs_the_processes_it_asks_for(tiny, tmp_path):
    """The bench's rewardserve starts like ``rewardserve serve``: with processes=2, a supervisor and two
    server processes (it used to call the one-process ``serve`` whatever ``processes`` said)."""
    s = ServerProcess.rewardserve(tiny["onnx"], "fp32", threads=1, max_batch_items=16, max_wait_ms=None,
                                  log_dir=tmp_path, processes=2)
    with s.start(120):
        children = [p for p in s._cpu.processes()[1:] if "rewardserve.service.edge.processes" in " ".join(p.cmdline())]
        assert len(children) == 2
