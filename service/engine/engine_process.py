"""The engine process of ``serve --engine shared``: every model and its batcher, for all edge processes.

It loads and warms up the models as a whole server does (``ModelRegistry.load``: the backend
race, parity gates, inference threads), then listens on a Unix socket. Each edge process
connects once and sends its requests' token ids (:mod:`~rewardserve.service.engine.ipc`);
they go into the one batcher per model, so a batch holds items from every edge process (one
global batch per device), and each answer goes back to the edge that asked.

Readiness: ``ready(True)`` once listening, ``ready(False)`` while a dead batcher restarts and
on SIGTERM. On SIGTERM it stops listening, keeps serving the connected edge processes until they
have drained and closed (or ``grace_period_s`` + 10 s), runs what it accepted and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence

from rewardserve.service.config import ServiceConfig
from rewardserve.service.domain import Encoded
from rewardserve.service.engine.batcher import RESTART_DELAY_S, Batcher
from rewardserve.service.engine.ipc import Hello, Outbox, error_to_wire, frame, read_frame
from rewardserve.service.engine.models import ModelRegistry
from rewardserve.service.errors import ModelNotFound, ServiceError
from rewardserve.service.metrics import ServiceMetrics

from rewardserve.enums import BatcherFailurePolicy

logger = logging.getLogger(__name__)

DRAIN_EXTRA_S = 10.0  # beyond grace_period_s: the edge processes drain first, then close


class _Edge:
    """One connected edge process: where its answers go, gathered per loop turn."""

    def __init__(self, writer: asyncio.StreamWriter):
        self.writer = writer
        self.outbox = Outbox(writer)
        self.open = True

    def answer(self, request_id: int, rows: list | None, error: BaseException | None) -> None:
        if self.open:  # else the edge went away; its callers already got UNAVAILABLE
            self.outbox.add((request_id, rows, None if error is None else error_to_wire(error)))

    def close(self) -> None:
        self.open = False
        self.outbox.close()


class EngineServer:
    """Serves one registry's models to the edge processes connected to it."""

    def __init__(self, registry: ModelRegistry):
        self.registry = registry
        self.edges: set[_Edge] = set()
        self.hello = Hello({name: (m.info, m.variant) for name, m in registry.models.items()},
                           dict(registry.failed), registry.default)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One edge process's connection: read its requests until it closes."""
        edge = _Edge(writer)
        self.edges.add(edge)
        writer.write(frame(self.hello))
        try:
            while True:
                for request_id, model, items, deadline in await read_frame(reader):
                    self._submit(edge, request_id, model, items, deadline)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the edge process stopped (or died)
        except Exception:
            logger.exception("engine: a frame from an edge process did not decode; closing its connection")
        finally:
            edge.close()
            self.edges.discard(edge)

    def _submit(self, edge: _Edge, request_id: int, model: str, items: Sequence[Encoded], deadline: float) -> None:
        served = self.registry.models.get(model)
        try:
            if served is None:
                raise ModelNotFound(f"model {model!r} is not in the engine process")
            futures = served.batcher.submit(items, deadline)
        except ServiceError as e:  # queue full, stopping: the request's answer, not the connection's
            edge.answer(request_id, None, e)
            return
        left = len(futures)

        def done(_: asyncio.Future) -> None:
            nonlocal left
            left -= 1
            if left == 0:
                error = next((f.exception() for f in futures if f.exception() is not None), None)
                edge.answer(request_id, None if error else [f.result() for f in futures], error)

        for f in futures:
            f.add_done_callback(done)


async def run_engine(config: ServiceConfig, path: str, ready: Callable[[bool], None]) -> int:
    """Load the models, serve edge processes on ``path`` until SIGTERM (0) or a fatal batcher death (1)."""
    registry = await asyncio.to_thread(ModelRegistry.load, config, ServiceMetrics())
    registry.start()
    engine = EngineServer(registry)
    fatal, stop = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def recover(batcher: Batcher) -> None:
        ready(False)
        if config.on_batcher_failure is BatcherFailurePolicy.exit:
            fatal.set()
            return
        await asyncio.sleep(RESTART_DELAY_S)
        batcher.restart()
        ready(True)

    recovering: set[asyncio.Task] = set()

    def failed(batcher: Batcher, error: BaseException) -> None:
        logger.error("engine: model %s: batcher died; on_batcher_failure=%s", batcher.name,
                     config.on_batcher_failure.value)
        task = loop.create_task(recover(batcher))
        recovering.add(task)
        task.add_done_callback(recovering.discard)

    for model in registry.models.values():
        model.batcher.on_failure = failed
    server = await asyncio.start_unix_server(engine.handle, path=path)
    ready(True)
    logger.info("engine: serving %s to the edge processes on %s", sorted(registry.models), path)
    waits = [loop.create_task(stop.wait()), loop.create_task(fatal.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for w in waits:
        w.cancel()
    ready(False)
    server.close()  # no new edge processes; the connected ones finish their calls through it
    end = time.monotonic() + config.grace_period_s + DRAIN_EXTRA_S
    while engine.edges and time.monotonic() < end:
        await asyncio.sleep(0.05)
    for edge in list(engine.edges):
        edge.close()
    await registry.stop()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    logger.info("engine: stopped")
    return 1 if fatal.is_set() else 0


def serve_engine(config: ServiceConfig, path: str, ready: Callable[[bool], None]) -> int:
    """Run the engine process in a fresh event loop (blocking); return the exit code."""
    return asyncio.run(run_engine(config, path, ready))
