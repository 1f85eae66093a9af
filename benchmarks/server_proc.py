"""Servers under test as subprocesses: start on free loopback ports, wait for SERVING, measure, stop.

Each server runs in its own process, so its CPU use (psutil) and its ``/metrics`` counters
are its own and the load generator's event loop never competes with it for the GIL.

Example::

    with ServerProcess.rewardserve(config, variant="fp32", max_batch_items=64, log_dir=out) as server:
        before = server.snapshot()
        ...  # drive load at server.target
        stats = server.snapshot().since(before)  # cpu cores, items, mean batch, padding efficiency
"""

from __future__ import annotations

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
from prometheus_client.parser import text_string_to_metric_families

from rewardserve.bundle import RewardSpec

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
# Counters read from rewardserve's /metrics (summed over models).
COUNTERS = {
    "items": "rewardserve_items_total",
    "tokens": "rewardserve_tokens_total",
    "batches": "rewardserve_batch_size_count",
    "padded_tokens": "rewardserve_batch_padded_tokens_sum",
    "inference_s": "rewardserve_inference_seconds_sum",
    "queue_wait_s": "rewardserve_queue_wait_seconds_sum",
    "queue_wait_n": "rewardserve_queue_wait_seconds_count",
}


def free_port() -> int:
    """A loopback port free right now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Snapshot:
    """Server CPU seconds and metric counters at one instant."""

    time: float
    cpu_s: float
    counters: dict[str, float]

    def since(self, before: Snapshot) -> dict:
        """CPU cores used and batching statistics between ``before`` and this snapshot."""
        wall = self.time - before.time
        d = {k: self.counters.get(k, 0.0) - before.counters.get(k, 0.0) for k in COUNTERS}
        out = {"server_cpu_cores": (self.cpu_s - before.cpu_s) / wall if wall > 0 else 0.0}
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

    def __init__(self, name: str, argv: list[str], port: int, metrics_port: int | None, log_path: Path,
                 env: dict[str, str] | None = None):
        self.name, self.argv, self.port, self.metrics_port, self.log_path = name, argv, port, metrics_port, log_path
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self._ps: psutil.Process | None = None

    @classmethod
    def rewardserve(cls, bundle: Path, variant: str, threads: int, max_batch_items: int, max_wait_ms: float,
                    log_dir: Path, provider: str = "cpu", name: str | None = None,
                    allow_failed_parity: bool = False, max_batch_tokens: int | None = None) -> ServerProcess:
        """rewardserve serving one variant of ``bundle``."""
        port, metrics_port = free_port(), free_port()
        config = {
            "models": [f"bench={bundle}"], "port": port, "metrics_port": metrics_port, "precision": variant,
            "provider": provider, "intra_op_threads": threads, "max_batch_items": max_batch_items,
            "max_wait_ms": max_wait_ms,
            "max_queue_items": 65536, "grace_period_s": 1.0, "allow_failed_parity": allow_failed_parity,
        }
        if max_batch_tokens is not None:  # else the server's own default
            config["max_batch_tokens"] = max(max_batch_tokens, RewardSpec.load(bundle).max_length)
        name = name or f"rewardserve-{variant}-b{max_batch_items}"
        argv = [sys.executable, "-m", "rewardserve.benchmarks.server_proc", json.dumps(config)]
        return cls(name, argv, port, metrics_port, log_dir / f"{name}.log")

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

    def start(self, timeout_s: float = 180.0) -> ServerProcess:
        """Start the process and wait until its health check says SERVING."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               "TOKENIZERS_PARALLELISM": "false", **self.env}
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        self._ps = psutil.Process(self.proc.pid)
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

    def _log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def snapshot(self) -> Snapshot:
        """CPU seconds used so far (process and children) and the metric counters."""
        t = self._ps.cpu_times()
        cpu = t.user + t.system + t.children_user + t.children_system
        return Snapshot(time.perf_counter(), cpu, self.scrape() if self.metrics_port else {})

    def scrape(self) -> dict[str, float]:
        """The counters of :data:`COUNTERS` from ``/metrics``, summed over labels."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        wanted = {v: k for k, v in COUNTERS.items()}
        out = dict.fromkeys(COUNTERS, 0.0)
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name in wanted:
                    out[wanted[s.name]] += s.value
        return out

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit within 15 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop on SIGTERM: killing it", self.name)
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _serve_main(config_json: str) -> int:
    """Entry point of a rewardserve subprocess: serve one ServiceConfig given as JSON."""
    from rewardserve.service.config import ServiceConfig
    from rewardserve.service.edge.server import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return serve(ServiceConfig(**json.loads(config_json)))


if __name__ == "__main__":
    sys.exit(_serve_main(sys.argv[1]))
