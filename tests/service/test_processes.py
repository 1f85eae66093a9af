"""``serve --processes N``: one server on the ports, SERVING only while every process is, restarts, drain."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rewardserve.service.client import RewardClient
from rewardserve.service.config import ModelSource, ServiceConfig
from rewardserve.service.cpus import available_cpus, cgroup_quota
from rewardserve.service.edge.processes import Supervisor, probe_bind, resolve_engine, serve_processes

from rewardserve.enums import EngineLayout
from rewardserve.v1 import reward_pb2, reward_pb2_grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        try:
            return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2).status
        except grpc.RpcError:
            return -1


def wait_until(predicate, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_cgroup_quota_and_affinity(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_quota(tmp_path) == 1.5
    assert available_cpus(tmp_path) == min(len(os.sched_getaffinity(0)), 2)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_quota(tmp_path) is None
    assert available_cpus(tmp_path) == len(os.sched_getaffinity(0))


def test_threads_share_one_budget_across_models():
    models = tuple(ModelSource(n, "/nonexistent") for n in ("a", "b"))
    assert ServiceConfig(models=models, cpus=4).threading("cpu") == (2, 1)  # 2 models x 2 workers = 4 CPUs
    assert ServiceConfig(models=models[:1], cpus=4).threading("cpu") == (4, 1)


def test_a_port_in_use_is_refused_before_anything_starts(bundles):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match=rf"port 127.0.0.1:{port} is in use"):
            probe_bind("127.0.0.1", port, "port")
        config = ServiceConfig(models=(ModelSource("pairwise", str(bundles["pairwise"])),), port=port,
                               metrics_port=None, processes=2)
        with pytest.raises(OSError, match="in use"):
            serve_processes(config)


@pytest.mark.parametrize("processes", [1, 2])
def test_a_metrics_port_in_use_is_refused_like_a_grpc_port(processes, tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(Supervisor, "start_child", lambda self, index: started.append(index))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the supervisor's work directory
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = ServiceConfig(models=(ModelSource("a", "/nonexistent"),), port=0, metrics_port=port,
                               metrics_host="127.0.0.1", processes=processes)
        with pytest.raises(OSError, match=rf"metrics_port 127.0.0.1:{port} is in use .* choose another port"):
            serve_processes(config)
    assert started == [] and list(tmp_path.iterdir()) == []  # refused before any child or file


@pytest.mark.slow
@pytest.mark.e2e
def test_two_processes_serve_restart_and_drain(bundles):
    port, metrics_port = free_port(), free_port()
    argv = [sys.executable, "-m", "rewardserve.cli", "serve", "--model", f"pairwise={bundles['pairwise']}",
            "--port", str(port), "--metrics-port", str(metrics_port), "--processes", "2"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    target = f"127.0.0.1:{port}"
    try:
        wait_until(lambda: health(target) == health_pb2.HealthCheckResponse.SERVING)
        children = [c for c in psutil.Process(proc.pid).children()
                    if "rewardserve.service.edge.processes" in " ".join(c.cmdline())]
        assert len(children) == 2
        # A second server on the same port fails with a clear error instead of sharing it.
        second = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert second.returncode != 0 and "is in use" in second.stderr
        with RewardClient([target] * 4) as client:
            rewards = {client.score(["hello there"]).scores[0].reward for _ in range(20)}
        assert len(rewards) == 1  # every process scores alike
        scraped = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        total = sum(float(line.rsplit(" ", 1)[1]) for line in scraped.splitlines()
                    if line.startswith('rewardserve_requests_total{code="OK",method="Score"'))
        assert total >= 20  # one set of series: both processes' calls in one counter
        # A crashed process: health leaves SERVING until it is back, then every call works again.
        children[0].send_signal(signal.SIGKILL)
        wait_until(lambda: health(target) != health_pb2.HealthCheckResponse.SERVING, 30)
        wait_until(lambda: health(target) == health_pb2.HealthCheckResponse.SERVING, 60)
        with RewardClient(target) as client:
            assert client.score(["hello there"]).scores[0].reward in rewards
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children[1:])
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_engine_layout_is_per_process_on_cpu_unless_set():
    model = (ModelSource("a", "/nonexistent"),)
    assert resolve_engine(ServiceConfig(models=model, provider="cpu")) is EngineLayout.per_process
    assert resolve_engine(ServiceConfig(models=model, engine="shared")) is EngineLayout.shared
    assert resolve_engine(ServiceConfig(models=model, provider="cuda")) is EngineLayout.shared  # no CUDA check here
    assert resolve_engine(ServiceConfig(models=model, backend="openvino")) is EngineLayout.per_process
    import onnxruntime
    cuda_here = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    assert resolve_engine(ServiceConfig(models=model)) is (EngineLayout.shared if cuda_here else EngineLayout.per_process)
    with pytest.raises(ValueError, match="engine"):
        ServiceConfig(models=model, engine="global")


@pytest.mark.slow
@pytest.mark.e2e
def test_shared_engine_batches_for_every_edge_fails_fast_when_it_dies_and_drains(bundles):
    port, metrics_port = free_port(), free_port()
    argv = [sys.executable, "-m", "rewardserve.cli", "serve", "--model", f"pairwise={bundles['pairwise']}",
            "--port", str(port), "--metrics-port", str(metrics_port), "--processes", "2", "--engine", "shared"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    target = f"127.0.0.1:{port}"
    try:
        wait_until(lambda: health(target) == health_pb2.HealthCheckResponse.SERVING)
        children = {int(c.cmdline()[-1]): c for c in psutil.Process(proc.pid).children()
                    if "rewardserve.service.edge.processes" in " ".join(c.cmdline())}
        assert sorted(children) == [0, 1, 2]  # two edge processes, the engine last
        with RewardClient([target] * 4) as client:
            rewards = {client.score(["hello there"]).scores[0].reward for _ in range(20)}
            assert client.get_model().precision  # GetModel: what the engine serves
        assert len(rewards) == 1
        scraped = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        assert 'rewardserve_requests_total{code="OK",method="Score"' in scraped  # the edges' series
        assert "rewardserve_batch_size_count" in scraped  # the engine's, in the same set
        # The engine dies: calls fail at once with UNAVAILABLE (never hang), health leaves SERVING,
        # and once the supervisor's new engine is up every call works again.
        children[2].send_signal(signal.SIGKILL)
        wait_until(lambda: health(target) != health_pb2.HealthCheckResponse.SERVING, 30)
        with grpc.insecure_channel(target) as channel:
            request = reward_pb2.ScoreRequest(items=[reward_pb2.Item(text="hello there")])
            with pytest.raises(grpc.RpcError) as failed:
                reward_pb2_grpc.RewardServiceStub(channel).Score(request, timeout=10)
            assert failed.value.code() is grpc.StatusCode.UNAVAILABLE
        wait_until(lambda: health(target) == health_pb2.HealthCheckResponse.SERVING, 60)
        with RewardClient(target) as client:
            wait_until(lambda: _scores(client))
            assert client.score(["hello there"]).scores[0].reward in rewards
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def _scores(client) -> bool:
    """Whether a call succeeds (an edge reconnects to the new engine within its restart delay)."""
    try:
        client.score(["hello there"])
        return True
    except Exception:
        return False


def test_shared_engine_edges_each_refuse_beyond_their_share_of_the_queue(tmp_path, monkeypatch):
    import pickle

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    config = ServiceConfig(models=(ModelSource("a", "/nonexistent"),), port=0, metrics_port=None, processes=2,
                           engine="shared", max_queue_items=100, max_items_per_request=16)
    supervisor = Supervisor(config, 2)
    try:
        with open(os.path.join(supervisor.work_dir, "config.pickle"), "rb") as f:
            edge, flags, (engine, socket_path) = pickle.load(f)
        assert flags == 3 and socket_path.startswith(supervisor.work_dir)  # two edges and the engine
        assert engine.max_queue_items == 100 and edge.max_queue_items == 50
    finally:
        supervisor.cleanup()


def test_a_child_failing_before_serving_kills_the_ones_still_loading(tmp_path, monkeypatch):
    # An edge still waiting for an engine that failed to load would hold a SIGTERM until its wait
    # gave up (the reliability suite's bad-model runs took 20 s each with --engine shared).
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    config = ServiceConfig(models=(ModelSource("a", "/nonexistent"),), port=0, metrics_port=None, processes=2,
                           engine="shared")
    supervisor = Supervisor(config, 2)
    try:
        loading, ready = (subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2))
        failed = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
        failed.wait(30)
        supervisor.children = [loading, ready, failed]
        supervisor.flags.set(1, True)
        assert supervisor.check_children() == 3  # the engine's exit code, as a single server's
        assert loading.poll() is not None  # killed at once: it never served
        assert ready.poll() is None  # a ready one drains on SIGTERM as usual
        ready.kill()
    finally:
        supervisor.cleanup()


def test_a_child_dying_after_all_were_ready_is_restarted_even_if_a_peer_cleared_its_flag(tmp_path, monkeypatch):
    # The engine dies right after the server turned SERVING, before the supervisor's next poll; the
    # edges clear their flags on losing it. That is a crash to restart, not a failed start.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    restarted = []
    monkeypatch.setattr(Supervisor, "start_child", lambda self, index: restarted.append(index))
    config = ServiceConfig(models=(ModelSource("a", "/nonexistent"),), port=0, metrics_port=None, processes=2,
                           engine="shared")
    supervisor = Supervisor(config, 2)
    try:
        edges = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2)]
        engine = subprocess.Popen([sys.executable, "-c", "raise SystemExit(-9)"])
        engine.wait(30)
        supervisor.children = [*edges, engine]
        for index in range(3):
            supervisor.flags.set(index, True)
        supervisor.flags.set(0, False)  # edge 0 saw the engine go: NOT_SERVING
        assert supervisor.check_children() is None and restarted == [2]
        assert all(e.poll() is None for e in edges)
    finally:
        for e in edges:
            e.kill()
        supervisor.cleanup()
