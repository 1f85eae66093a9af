"""Servers under test as subprocesses: start on free loopback ports, wait until ready, measure, stop.

Each server runs in its own process (tree), so its CPU use (psutil, summed over every process
of the tree: :mod:`benchmarks.cpu_meter`) and its ``/metrics`` figures are its own, and the load
generator's event loop never competes with it for the GIL. Ready means gRPC health SERVING, or
for an HTTP-only peer a first ``/get_reward`` answered 200.

Example::

    with ServerProcess.rewardserve(config, variant="fp32", max_batch_items=64, log_dir=out) as server:
        before = server.snapshot()
        ...  # drive load at server.target
        stats = server.snapshot().since(before)  # cpu cores, items, mean batch, padding efficiency
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rewardserve.benchmarks.cpu_meter import TreeCpu
from rewardserve.benchmarks.scrape import COUNTERS, scrape

from rewardserve.bundle import RewardSpec

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A loopback port free right now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Snapshot:
    """Server CPU seconds, metric counters and histogram buckets at one instant."""

    time: float
    cpu_s: float
    counters: dict[str, float]
    histograms: dict[str, dict[float, float]] | None = None
    processes: int = 1

    def since(self, before: Snapshot) -> dict:
        """CPU cores used and batching statistics between ``before`` and this snapshot."""
        wall = self.time - before.time
        d = {k: self.counters.get(k, 0.0) - before.counters.get(k, 0.0) for k in COUNTERS}
        out = {"server_cpu_cores": (self.cpu_s - before.cpu_s) / wall if wall > 0 else 0.0,
               "server_cpu_s": self.cpu_s - before.cpu_s, "server_processes_seen": self.processes}
        if self.counters:  # rewardserve only; the torch baseline exports no metrics
            out.update({
                "server_items": d["items"],
                "mean_batch_size": d["items"] / d["batches"] if d["batches"] else None,
                "padding_efficiency": d["tokens"] / d["padded_tokens"] if d["padded_tokens"] else None,
                "inference_busy": d["inference_s"] / wall if wall > 0 else None,
                "mean_queue_wait_ms": 1000 * d["queue_wait_s"] / d["queue_wait_n"] if d["queue_wait_n"] else None,
            })
        return out


class ServerProcess:
    """One server under test, in a subprocess; a context manager that stops it on exit."""

    def __init__(self, name: str, argv: list[str], port: int | None, metrics_port: int | None, log_path: Path,
                 env: dict[str, str] | None = None, http_port: int | None = None, processes: int = 1,
                 http_path: str = "/get_reward", ready_body: dict | None = None):
        self.name, self.argv, self.port, self.metrics_port, self.log_path = name, argv, port, metrics_port, log_path
        self.env, self.http_port, self.processes = env or {}, http_port, processes
        self.http_path = http_path
        self.ready_body = ready_body or {"query": ["hello"], "prompts": [""], "labels": [""]}
        self.proc: subprocess.Popen | None = None
        self._cpu: TreeCpu | None = None

    @classmethod
    def rewardserve(cls, bundle: Path, variant: str, threads: int, max_batch_items: int, max_wait_ms: float | None,
                    log_dir: Path, provider: str = "cpu", name: str | None = None,
                    allow_failed_parity: bool = False, max_batch_tokens: int | None = None,
                    http: bool = False, processes: int = 0, backend: str | None = None,
                    engine: str | None = None) -> ServerProcess:
        """rewardserve serving one variant of ``bundle`` (``max_wait_ms`` None: the server's auto;
        ``http``: also OpenRLHF's ``/get_reward``; ``processes`` 0 / ``backend`` and ``engine`` None /
        ``variant`` auto: the server's default)."""
        port, metrics_port = free_port(), free_port()
        config = {
            "models": [f"bench={bundle}"], "port": port, "metrics_port": metrics_port,
            "provider": provider, "intra_op_threads": threads, "max_batch_items": max_batch_items,
            "max_queue_items": 65536, "grace_period_s": 1.0, "allow_failed_parity": allow_failed_parity,
        }
        if variant != "auto":
            config["precision"] = variant
        if backend is not None:
            config["backend"] = backend
        if engine is not None:
            config["engine"] = engine
        if max_wait_ms is not None:
            config["max_wait_ms"] = max_wait_ms
        if max_batch_tokens is not None:  # else the server's own default
            config["max_batch_tokens"] = max(max_batch_tokens, RewardSpec.load(bundle).max_length)
        http_port = free_port() if http else None
        if http_port:
            config["http_port"] = http_port
        if processes:
            config["processes"] = processes
        name = name or f"rewardserve-{variant}-b{max_batch_items}"
        argv = [sys.executable, "-m", "rewardserve.benchmarks.server_proc", json.dumps(config)]
        return cls(name, argv, port, metrics_port, log_dir / f"{name}.log", http_port=http_port,
                   processes=processes or server_processes_default())

    @classmethod
    def noop(cls, log_dir: Path, processes: int = 1, http: bool = True) -> ServerProcess:
        """The no-op RewardService (:mod:`benchmarks.noop_server`): the measuring setup's ceiling."""
        port, http_port = free_port(), free_port() if http else None
        argv = [sys.executable, "-m", "rewardserve.benchmarks.noop_server", "--port", str(port),
                "--processes", str(max(1, processes))] + (["--http-port", str(http_port)] if http_port else [])
        return cls(f"noop-p{processes}", argv, port, None, log_dir / f"noop-p{processes}.log", http_port=http_port,
                   processes=max(1, processes))

    @classmethod
    def torch(cls, source_bundle: Path, threads: int, log_dir: Path, device: str = "cpu",
              dtype: str = "fp32") -> ServerProcess:
        """The per-request PyTorch baseline (:mod:`benchmarks.torch_server`)."""
        port = free_port()
        argv = [sys.executable, "-m", "rewardserve.benchmarks.torch_server", "--source-bundle", str(source_bundle),
                "--port", str(port), "--threads", str(threads), "--device", device, "--dtype", dtype]
        # Passive OpenMP waits, as ONNX Runtime's allow_spinning=0 in the server: spinning OpenMP
        # workers starve the event loop on a small shared machine (6 vs 430 items/s measured on a
        # tiny model at one client), which would make the baseline unfairly slow.
        return cls(f"torch-{dtype}-{device}", argv, port, None, log_dir / f"torch-{dtype}-{device}.log",
                   env={"OMP_WAIT_POLICY": "PASSIVE"})

    @property
    def target(self) -> str:
        """``host:port`` for gRPC clients."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The HTTP scoring URL (OpenRLHF's ``/get_reward``, or a peer's own route)."""
        if not self.http_port:
            raise ValueError(f"{self.name} serves no HTTP")
        return f"http://127.0.0.1:{self.http_port}{self.http_path}"

    def address(self, protocol: str) -> str:
        """Where the load generator sends ``protocol`` (grpc or http) requests."""
        return self.target if protocol == "grpc" else self.url

    def start(self, timeout_s: float = 180.0) -> ServerProcess:
        """Start the process and wait until its health check says SERVING."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               "TOKENIZERS_PARALLELISM": "false", **self.env}
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        self._cpu = TreeCpu(self.proc.pid)
        if self.port is None:
            self._wait_http(timeout_s)
        else:
            self._wait_serving(timeout_s)
        logger.info("%s serving on %s (pid %d)", self.name, self.target, self.proc.pid)
        return self

    def _wait_serving(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with code {self.proc.returncode}:\n{self._log_tail()}")
                try:
                    if stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0).status == \
                            health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"{self.name} not SERVING after {timeout_s}s:\n{self._log_tail()}")

    def served(self, model: str = "bench") -> dict:
        """What rewardserve says it serves (GetModel: precision and execution provider / backend)."""
        from rewardserve.v1 import reward_pb2 as pb
        from rewardserve.v1 import reward_pb2_grpc

        with grpc.insecure_channel(self.target) as channel:
            info = reward_pb2_grpc.RewardServiceStub(channel).GetModel(pb.GetModelRequest(model=model), timeout=10)
        return {"precision": info.precision, "execution_provider": info.execution_provider,
                "parity_passed": info.parity_passed}

    def _wait_http(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        body = json.dumps(self.ready_body).encode()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.proc.returncode}:\n{self._log_tail()}")
            try:
                req = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"{self.name} not answering {self.url} after {timeout_s}s:\n{self._log_tail()}")

    def _log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def snapshot(self) -> Snapshot:
        """CPU seconds used so far (every process of the server's tree), metric counters and histograms."""
        counters, hists = scrape(self.metrics_port) if self.metrics_port else ({}, {})
        return Snapshot(time.perf_counter(), self._cpu.cpu_s(), counters, hists, self._cpu.count())

    def scrape(self) -> dict[str, float]:
        """The counters of :data:`COUNTERS` from ``/metrics``, summed over labels."""
        return scrape(self.metrics_port)[0]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit within 15 s; then any of its processes left behind
        (a multi-process server's workers, a peer's spawned servers) the same way."""
        if self.proc is None or self.proc.poll() is not None:
            return
        left = self._cpu.processes()[1:] if self._cpu else []  # descendants, found before the root goes
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop on SIGTERM: killing it", self.name)
            self.proc.kill()
            self.proc.wait(5)
        alive = [p for p in left if p.is_running()]
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.terminate()
        _, alive = psutil.wait_procs(alive, timeout=5)
        for p in alive:
            logger.warning("%s left process %d behind: killing it", self.name, p.pid)
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def server_processes_default() -> int:
    """How many processes rewardserve serves with when not told: its own auto (affinity and cgroup quota)."""
    from rewardserve.service.cpus import available_cpus

    return available_cpus()


def _serve_main(config_json: str) -> int:
    """Entry point of a rewardserve subprocess: serve one ServiceConfig given as JSON, as ``rewardserve serve``
    does (``processes``: that many server processes under a supervisor; auto: one per available CPU)."""
    from rewardserve.service.config import ServiceConfig
    from rewardserve.service.edge.processes import serve_processes

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return serve_processes(ServiceConfig(**json.loads(config_json)))


if __name__ == "__main__":
    sys.exit(_serve_main(sys.argv[1]))
