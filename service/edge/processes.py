"""``serve --processes N``: N server processes on the same ports, under one supervisor.

Each child serves the gRPC and HTTP ports with SO_REUSEPORT, so the kernel spreads connections
over the processes; one client channel sticks to the process its connection landed on. Two
layouts (``--engine``):

* ``per-process``: each child is a whole server (edge and engine: it decodes, tokenizes,
  batches and runs its own requests, with its share of the CPU budget);
* ``shared``: the children are edge processes (decode, validate, tokenize) that hand each
  request's token ids to one more child, the engine process
  (:mod:`~rewardserve.service.engine.engine_process`), which holds the models, gets the whole
  inference budget and forms one batch per model across all edges.

The supervisor:

* probe-binds every port WITHOUT SO_REUSEPORT first, so a second ``rewardserve serve`` on a port
  in use fails with a clear error instead of silently splitting traffic with the first;
* splits the CPU budget (:func:`~rewardserve.service.cpus.available_cpus`) between the children;
* serves ``/metrics`` for all of them as one set of series (prometheus_client multiprocess mode);
* keeps health SERVING only while every child (the engine too) is ready (:class:`ReadyFlags`);
* restarts a child that dies (its in-flight calls fail with UNAVAILABLE: an edge's when its
  connections drop, the engine's when the edges' links to it drop) and forwards SIGTERM/SIGINT
  so every child drains before the supervisor exits (the edges first, then the engine).

Example::

    serve_processes(ServiceConfig(models=(ModelSource("hh", "models/hh-onnx"),), processes=2))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace

from rewardserve.service.config import ServiceConfig
from rewardserve.service.cpus import available_cpus
from rewardserve.service.edge.peers import ReadyFlags
from rewardserve.service.edge.ports import probe_bind
from rewardserve.service.engine.ipc import SOCKET_FILE

from rewardserve.enums import EngineLayout, Provider
from rewardserve.manifest import Runtime

logger = logging.getLogger(__name__)

POLL_S = 0.2
MAX_RESTARTS = 5  # per RESTART_WINDOW_S; beyond it the supervisor gives up (exit 1)
RESTART_WINDOW_S = 60.0
FAILED_TO_START = 2
CONFIG_FILE = "config.pickle"
READY_FILE = "ready"


def resolve_processes(config: ServiceConfig) -> int:
    """The number of server processes: the set value, or one per CPU this process may use."""
    return config.processes or available_cpus()


def resolve_engine(config: ServiceConfig) -> EngineLayout:
    """per-process or shared: the set layout, or auto (shared when the models run on CUDA)."""
    if config.engine is not EngineLayout.auto:
        return config.engine
    from rewardserve.service.backends.base import resolve

    if config.provider is Provider.auto and config.backend is not Runtime.openvino:
        cuda = resolve(Provider.auto) is Provider.cuda  # CUDA when the runtime offers it
    else:
        cuda = config.provider is Provider.cuda  # a CUDA that fails to load stops the engine, with the reason
    return EngineLayout.shared if cuda else EngineLayout.per_process


def _child(work_dir: str, index: int) -> None:
    """A child process: a server (whole, or an edge) or the engine, reporting readiness in the shared flags.

    Started as ``python -m rewardserve.service.edge.processes WORK_DIR INDEX`` (a fresh
    interpreter: nothing of the parent's ``__main__`` is re-run). A start-up error (a bad bundle,
    a port) is written to ``WORK_DIR/error-INDEX`` so the command fails with the same message as a
    single server; the process ends with ``os._exit`` so no worker thread keeps it alive.
    """
    from rewardserve.service.edge.server import serve  # after PROMETHEUS_MULTIPROC_DIR is in the env

    logging.basicConfig(level=logging.INFO,
                        format=f"%(asctime)s %(levelname)s [{index}] %(name)s: %(message)s")
    with open(os.path.join(work_dir, CONFIG_FILE), "rb") as f:
        config, count, engine = pickle.load(f)  # engine: None, or (its config, its socket)
    flags = ReadyFlags.attach(os.path.join(work_dir, READY_FILE), count)
    code = 1
    try:
        if engine is not None and index == count - 1:  # the last flag is the engine's
            from rewardserve.service.engine.engine_process import serve_engine

            code = serve_engine(engine[0], engine[1], lambda ok: flags.set(index, ok))
        else:
            code = serve(config, reuse_port=True, peers=(flags, index), engine=engine and engine[1])
    except (ValueError, OSError) as e:  # what the CLI reports as a user error (exit 2)
        with open(os.path.join(work_dir, f"error-{index}"), "w") as f:
            f.write(str(e))
        code = FAILED_TO_START
    except BaseException:
        logger.exception("server process %d failed", index)
    finally:
        flags.close()
        logging.shutdown()
        os._exit(code)


class Supervisor:
    """Starts, watches, restarts and stops the children; serves their metrics."""

    def __init__(self, config: ServiceConfig, count: int):
        self.config, self.count = config, count
        port = probe_bind(config.host, config.port, "port")  # ports in use: refused before anything starts
        http_port = None if config.http_port is None else probe_bind(config.host, config.http_port, "http_port")
        if config.metrics_port is not None:  # the supervisor's own (serve_metrics), bound after the children start
            probe_bind(config.metrics_host, config.metrics_port, "metrics_port")
        self.work_dir = tempfile.mkdtemp(prefix="rewardserve-")  # the children's config, errors, metrics
        self.metrics_dir = os.path.join(self.work_dir, "metrics")
        os.mkdir(self.metrics_dir)
        self.shared = resolve_engine(config) is EngineLayout.shared
        # Per-process: one share of the budget per child, for all its models; shared: all of it the engine's.
        cpus = available_cpus() if self.shared else max(1, available_cpus() // count)
        self.child_config = replace(config, port=port, http_port=http_port, metrics_port=None, processes=1,
                                    cpus=cpus)
        engine = None
        if self.shared:  # the engine holds the model's whole queue; each edge refuses beyond its share at once,
            engine = (self.child_config, os.path.join(self.work_dir, SOCKET_FILE))  # before tokenizing
            share = max(config.max_items_per_request, config.max_queue_items // count)
            self.child_config = replace(self.child_config, max_queue_items=share)
        self.total = count + self.shared  # the engine is the last child
        self.flags = ReadyFlags.create(os.path.join(self.work_dir, READY_FILE), self.total)
        with open(os.path.join(self.work_dir, CONFIG_FILE), "wb") as f:
            pickle.dump((self.child_config, self.total, engine), f)
        self.children: list[subprocess.Popen | None] = [None] * self.total
        self._restarts: list[float] = []
        self._ever_ready = False
        self.stopping = False

    def start_child(self, index: int) -> None:
        """Start (or restart) child ``index``."""
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": self.metrics_dir}
        proc = subprocess.Popen([sys.executable, "-m", __name__, self.work_dir, str(index)], env=env)
        self.children[index] = proc
        logger.info("server process %d started (pid %d)", index, proc.pid)

    def check_children(self) -> int | None:
        """Restart dead children; return an exit code when the server must stop."""
        from prometheus_client import multiprocess

        # Sticky: a process that died just after the last poll may already have cleared its flag.
        self._ever_ready |= self.flags.all_have_been_ready()
        for index, proc in enumerate(self.children):
            if proc is None or proc.poll() is None or self.stopping:
                continue
            self.flags.set(index, False)
            multiprocess.mark_process_dead(proc.pid, self.metrics_dir)
            if not self._ever_ready:  # failed while loading (bad model, port): as a single server would
                logger.error("server process %d exited with code %s before serving; stopping", index, proc.returncode)
                self.kill_unready()
                error = os.path.join(self.work_dir, f"error-{index}")
                if os.path.exists(error):
                    with open(error) as f:
                        raise ValueError(f.read())  # the CLI prints it and exits 2, as for one process
                return proc.returncode or FAILED_TO_START
            now = time.monotonic()
            self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW_S] + [now]
            if len(self._restarts) > MAX_RESTARTS:
                logger.error("server processes died %d times in %.0f s; giving up", len(self._restarts),
                             RESTART_WINDOW_S)
                return 1
            logger.error("server process %d (pid %d) died with code %s; restarting it", index, proc.pid,
                         proc.returncode)
            self.start_child(index)
        return None

    def kill_unready(self) -> None:
        """Kill the children that are still loading: they have served nothing, and an edge waiting for an
        engine that will never listen would otherwise hold its SIGTERM until its wait gives up."""
        for index, proc in enumerate(self.children):
            if proc is not None and proc.poll() is None and not self.flags.ready(index):
                proc.kill()
                proc.wait(5)

    async def stop_children(self) -> None:
        """SIGTERM every child, wait for them to drain, kill what is left: the edges, then the engine."""
        self.stopping = True
        await self._stop(self.children[:self.count])
        await self._stop(self.children[self.count:])

    async def _stop(self, children: list[subprocess.Popen | None]) -> None:
        running = [p for p in children if p is not None and p.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.config.grace_period_s + 10.0
        while any(p.poll() is None for p in running) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for proc in running:
            if proc.poll() is None:
                logger.error("server process %d did not stop in time: killed", proc.pid)
                proc.kill()
                proc.wait(5)

    async def serve_metrics(self):
        """``/metrics`` of every child, as one registry, with the server's TLS and token settings."""
        from prometheus_client import CollectorRegistry, multiprocess
        from rewardserve.service.edge.security import Security
        from rewardserve.service.metrics import ServiceMetrics

        if self.config.metrics_port is None:
            return None
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.metrics_dir)
        security = Security.load(self.config, ServiceMetrics(CollectorRegistry()))
        runner, port = await ServiceMetrics.serve_registry_http(
            registry, self.config.metrics_port, self.config.metrics_host, security.ssl_context,
            security.http_middlewares(limit_concurrency=False))
        security.warn_if_exposed("/metrics", self.config.metrics_host, port)
        return runner

    def cleanup(self) -> None:
        self.flags.close()
        shutil.rmtree(self.work_dir, ignore_errors=True)


async def _supervise(config: ServiceConfig, count: int) -> int:
    supervisor = Supervisor(config, count)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics_runner = None
    code: int | None = None
    try:
        for index in reversed(range(supervisor.total)):  # the engine first: it loads while the edges start
            supervisor.start_child(index)
        metrics_runner = await supervisor.serve_metrics()
        if supervisor.shared:
            logger.info("supervising %d edge processes on %s:%d and one engine process (%d CPUs)", count,
                        config.host, supervisor.child_config.port, supervisor.child_config.cpus)
        else:
            logger.info("supervising %d server processes on %s:%d (%d CPUs each)", count, config.host,
                        supervisor.child_config.port, supervisor.child_config.cpus)
        while code is None and not stop.is_set():
            code = supervisor.check_children()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)
        if stop.is_set():
            logger.info("signal received: draining %d server processes", count)
    finally:
        await supervisor.stop_children()
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        supervisor.cleanup()
    return 0 if code is None else code


def serve_processes(config: ServiceConfig) -> int:
    """Serve with ``resolve_processes(config)`` processes (blocking); return the exit code."""
    count = resolve_processes(config)
    if count == 1:
        from rewardserve.service.edge.server import serve

        return serve(config)
    return asyncio.run(_supervise(config, count))


if __name__ == "__main__":  # a child: python -m rewardserve.service.edge.processes WORK_DIR INDEX
    _child(sys.argv[1], int(sys.argv[2]))
