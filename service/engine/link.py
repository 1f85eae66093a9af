"""An edge process's side of ``serve --engine shared``: its models' batches run in the engine process.

An edge process does what a whole server does up to the batcher (decode, validate, format,
tokenize, and everything after: scores, statuses, metrics of its calls); its models hold a
:class:`RemoteBatcher` instead of a :class:`~rewardserve.service.engine.batcher.Batcher`. Each
request's token ids go over the process's one :class:`EngineLink` to the engine process
(:mod:`~rewardserve.service.engine.engine_process`), whose batcher forms one batch per model
across every edge process; the answer carries one row per item, or the request's error.

If the engine process goes away, every request waiting on it fails with UNAVAILABLE (never
hangs), new ones get UNAVAILABLE, and each model's ``on_failure`` runs as for a batcher that
died: health NOT_SERVING, then ``restart`` reconnects once the supervisor's new engine listens.

Example::

    loader = engine_registry("/tmp/rewardserve-x/engine.sock")   # RewardServer(config, loader=loader)
    registry = loader(config, metrics)   # blocking: waits for the engine, builds the edge models
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rewardserve.service.config import ServiceConfig
from rewardserve.service.domain import Encoded
from rewardserve.service.engine.composite import build_composites
from rewardserve.service.engine.encoding import TextEncoder
from rewardserve.service.engine.ipc import Hello, Outbox, error_from_wire, read_frame, recv_frame
from rewardserve.service.engine.models import TOKENIZER_FILE, ModelRegistry, ScoringModel
from rewardserve.service.errors import QueueFull, Unavailable
from rewardserve.service.metrics import DrainMeter, ServiceMetrics

from rewardserve.bundle import RewardSpec

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 1800.0  # the engine loads, races and warms up every model before it listens
CONNECT_POLL_S = 0.1


class EngineLink:
    """One edge process's connection to the engine process, shared by all its models."""

    def __init__(self, path: str):
        self.path = path
        self.batchers: dict[str, RemoteBatcher] = {}
        self.connected = False
        self._sock: socket.socket | None = None
        self._task: asyncio.Task | None = None
        self._pending: dict[int, tuple[RemoteBatcher, list[asyncio.Future], float]] = {}
        self._outbox = Outbox()  # requests of this loop turn, sent as one frame once connected
        self._next_id = 0

    def connect(self, timeout_s: float = CONNECT_TIMEOUT_S) -> Hello:
        """Connect (blocking), waiting until the engine listens; return what it serves."""
        deadline = time.monotonic() + timeout_s
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.path)
                hello = recv_frame(sock)
                break
            except (FileNotFoundError, ConnectionError):  # not listening yet (loading), or restarting
                sock.close()
                if time.monotonic() > deadline:
                    raise Unavailable(f"the engine process did not listen on {self.path} within "
                                      f"{timeout_s:.0f} s") from None
                time.sleep(CONNECT_POLL_S)
        self._sock, self.connected = sock, True
        return hello

    def start(self) -> None:
        """Start reading answers (in the event loop) on the connection :meth:`connect` opened."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._read(), name="engine-link")

    def reconnect(self) -> None:
        """After the engine went away: connect to its successor in the background."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._reconnect(), name="engine-link")

    async def _reconnect(self) -> None:
        await asyncio.to_thread(self.connect)
        logger.info("engine process: reconnected on %s", self.path)
        await self._read()

    async def _read(self) -> None:
        reader, self._outbox.writer = await asyncio.open_unix_connection(sock=self._sock)
        self._outbox.flush()  # what was submitted while the connection opened
        try:
            while True:
                for request_id, rows, error in await read_frame(reader):
                    self._answer(request_id, rows, error)
        except Exception as e:  # gone (IncompleteReadError, ConnectionError), or a frame that does not decode
            lost: BaseException = e
        finally:
            self.connected = False
            self._outbox.close()
        logger.error("engine process: connection lost (%s); %d requests fail with UNAVAILABLE",
                     type(lost).__name__, len(self._pending))
        self._fail_pending(Unavailable("the engine process stopped; retry"))
        for batcher in self.batchers.values():
            batcher.lost(lost)

    def submit(self, batcher: RemoteBatcher, items: Sequence[Encoded], deadline: float) -> list[asyncio.Future]:
        """Send one request's items; one future per item, all resolved by its answer."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        self._next_id += 1
        self._pending[self._next_id] = (batcher, futures, time.monotonic())
        self._outbox.add((self._next_id, batcher.name, items, deadline))
        return futures

    def _answer(self, request_id: int, rows: list | None, error: tuple | None) -> None:
        if (pending := self._pending.pop(request_id, None)) is None:
            return
        batcher, futures, started = pending
        batcher.depth -= len(futures)
        if error is not None:
            exc = error_from_wire(error)
            for f in futures:
                if not f.done():
                    f.set_exception(exc)
            return
        batcher.drain.record(len(futures), started)
        for f, row in zip(futures, rows, strict=True):
            if not f.done():
                f.set_result(row)

    def _fail_pending(self, error: Exception) -> None:
        pending, self._pending, self._outbox.items = self._pending, {}, []
        for batcher, futures, _ in pending.values():
            batcher.depth -= len(futures)
            for f in futures:
                if not f.done():
                    f.set_exception(error)

    async def close(self) -> None:
        """Stop reading and close the connection (once every model has stopped)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.connected = False
        self._outbox.close()


class RemoteBatcher:
    """The batcher interface of an edge model whose batches run in the engine process."""

    run_batch = None  # nothing runs here (warm-up happens in the engine)

    def __init__(self, name: str, link: EngineLink, max_queue_items: int):
        self.name, self.link, self.max_queue_items = name, link, max_queue_items
        self.depth = 0  # this process's items waiting for their answers
        self.drain = DrainMeter()  # items/s answered: back-pressure answers say when to come back
        self.on_failure: Callable[[RemoteBatcher, BaseException], None] | None = None
        self._closed = False
        link.batchers[name] = self

    @property
    def alive(self) -> bool:
        return self.link.connected and not self._closed

    def start(self) -> None:
        self.link.start()

    def restart(self) -> None:
        """After the engine went away: reconnect (requests get UNAVAILABLE until it is back)."""
        self.link.reconnect()

    def lost(self, error: BaseException) -> None:
        """The engine went away (called by the link, in the loop)."""
        if not self._closed and self.on_failure is not None:
            self.on_failure(self, error)

    def check_room(self, count: int) -> None:
        """Raise Unavailable without an engine, QueueFull when this process already waits on too many items."""
        if self._closed or not self.link.connected:
            raise Unavailable(f"model {self.name}: the engine process is not available; retry")
        if self.depth + count > self.max_queue_items:
            raise QueueFull(f"model {self.name}: queue full ({self.depth} items waiting, limit "
                            f"{self.max_queue_items}); retry later", retry_after_s=self.retry_after_s())

    def retry_after_s(self) -> float | None:
        return self.drain.seconds_to_drain(self.depth)

    def submit(self, items: Sequence[Encoded], deadline: float = math.inf) -> list[asyncio.Future]:
        """Queue items in the engine; one future per item resolving to its row."""
        self.check_room(len(items))
        self.depth += len(items)
        return self.link.submit(self, items, deadline)

    async def stop(self) -> None:
        """Refuse new items, wait for the answers of accepted ones; the last model to stop closes the link."""
        self._closed = True
        while self.depth and self.link.connected:
            await asyncio.sleep(0.01)
        if all(b._closed and not b.depth for b in self.link.batchers.values()):
            await self.link.close()


def engine_registry(path: str) -> Callable[[ServiceConfig, ServiceMetrics], ModelRegistry]:
    """A RewardServer loader for an edge process: the engine's models, scored through ``path``."""

    def load(config: ServiceConfig, metrics: ServiceMetrics) -> ModelRegistry:
        link = EngineLink(path)
        hello = link.connect()
        pool = ThreadPoolExecutor(config.tokenizer_workers, thread_name_prefix="prepare")
        models = {}
        for source in config.models:
            if source.name not in hello.models:  # failed in the engine (on_model_error=skip)
                continue
            info, variant = hello.models[source.name]
            spec = RewardSpec.load(Path(source.path))  # the engine checked the files; the edge reads two
            encoder = TextEncoder.from_file(Path(source.path) / TOKENIZER_FILE, spec.max_length)
            batcher = RemoteBatcher(source.name, link, config.max_queue_items)
            models[source.name] = ScoringModel(source.name, spec, variant, encoder, None, batcher, pool,
                                               config.max_text_chars, info=info)
        composites, lost = build_composites(config.composites, models, hello.failed)
        return ModelRegistry(models, pool, hello.failed | lost, default=hello.default, composites=composites)

    return load
