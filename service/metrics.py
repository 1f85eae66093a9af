"""Prometheus metrics of one server, in its own registry (tests may run several servers), and
:class:`DrainMeter`, the one measurement the server reads back: how fast a model's queue drains
(items per second over a sliding window), which back-pressure answers divide the queue by.

With ``serve --processes N`` every process writes its values to ``PROMETHEUS_MULTIPROC_DIR``
(prometheus_client's multiprocess mode) and the supervisor serves them as ONE set of series,
under the same names: gauges add up across processes (``livesum``), and the model info, an
``Info`` in spirit, is a gauge of 1 (``Info`` and ``set_function`` have no multiprocess mode).

Example::

    metrics = ServiceMetrics()
    metrics.batch_observer("hh")(8, 700, 800, 0.01)  # items, real and padded tokens, seconds
    runner, port = await metrics.serve_http(9400, "127.0.0.1")
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Queue wait and one batch's inference: fine below 10 ms, where max_wait_ms and a small model's batches live
# (the bench's trickle check reads their p99s; 1 ms steps could not tell a 5 ms bound from 10 ms).
ENGINE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.0075, 0.01, 0.015,
                  0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
TOKEN_BUCKETS = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
MODEL_INFO_LABELS = ("model", "path", "precision", "provider", "kind", "max_length", "parity_passed")
FRACTION_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


class ServiceMetrics:
    """Every metric family the service exports (names start with ``rewardserve_``)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._children: dict[tuple, Any] = {}  # (id(metric), *labels) -> its series: see series()
        self.requests = Counter("rewardserve_requests", "RPCs by method, model and status code",
                                ["method", "model", "code"], registry=r)
        self.request_latency = Histogram("rewardserve_request_latency_seconds", "end-to-end RPC latency",
                                         ["method"], buckets=LATENCY_BUCKETS, registry=r)
        self.items = Counter("rewardserve_items", "items scored", ["model"], registry=r)
        self.tokens = Counter("rewardserve_tokens", "real (unpadded) tokens scored", ["model"], registry=r)
        self.dropped = Counter("rewardserve_items_dropped", "queued items not run, by reason",
                               ["model", "reason"], registry=r)
        self.queue_wait = Histogram("rewardserve_queue_wait_seconds", "time an item waits before its batch runs",
                                    ["model"], buckets=ENGINE_BUCKETS, registry=r)
        self.inference = Histogram("rewardserve_inference_seconds", "backend time per batch",
                                   ["model"], buckets=ENGINE_BUCKETS, registry=r)
        self.batch_size = Histogram("rewardserve_batch_size", "items per batch", ["model"],
                                    buckets=SIZE_BUCKETS, registry=r)
        self.batch_tokens = Histogram("rewardserve_batch_padded_tokens", "padded tokens per batch", ["model"],
                                      buckets=TOKEN_BUCKETS, registry=r)
        self.padding_efficiency = Histogram("rewardserve_padding_efficiency", "real / padded tokens per batch",
                                            ["model"], buckets=FRACTION_BUCKETS, registry=r)
        self.queue_depth = Gauge("rewardserve_queue_depth", "items waiting in the model's queue", ["model"],
                                 registry=r, multiprocess_mode="livesum")
        self.in_flight = Gauge("rewardserve_in_flight_requests", "RPCs being handled", ["method"], registry=r,
                               multiprocess_mode="livesum")
        self.batches_in_flight = Gauge("rewardserve_batches_in_flight", "batches running in ONNX Runtime",
                                       ["model"], registry=r, multiprocess_mode="livesum")
        self.model_info = Gauge("rewardserve_model_info", "served models (value 1)", MODEL_INFO_LABELS,
                                registry=r, multiprocess_mode="max")
        self.rejected = Counter("rewardserve_requests_rejected", "calls refused before reaching a service "
                                "(unauthenticated, overloaded), by protocol and reason", ["protocol", "reason"],
                                registry=r)

    def set_model_info(self, model: str, info: dict[str, str]) -> None:
        """Publish what a served model is (``info`` keys: the labels of :data:`MODEL_INFO_LABELS`)."""
        self.model_info.labels(model, *(str(info.get(k, "")) for k in MODEL_INFO_LABELS[1:])).set(1)

    def observe_request(self, method: str, model: str, code: str, seconds: float) -> None:
        """Count one finished RPC and its latency."""
        self.series(self.requests, method, model, code).inc()
        self.series(self.request_latency, method).observe(seconds)

    def series(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, resolved once (labels() costs more than the update; label sets are bounded)."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def batch_observer(self, model: str) -> Callable[[int, int, int, float], None]:
        """Record one model's batches: ``observe(items, real_tokens, padded_tokens, seconds)``, series resolved once."""
        items, tokens, size, padded, efficiency, inference = (
            m.labels(model) for m in (self.items, self.tokens, self.batch_size, self.batch_tokens,
                                      self.padding_efficiency, self.inference))

        def observe(n: int, real_tokens: int, padded_tokens: int, seconds: float) -> None:
            items.inc(n)
            tokens.inc(real_tokens)
            size.observe(n)
            padded.observe(padded_tokens)
            efficiency.observe(real_tokens / padded_tokens if padded_tokens else 1.0)
            inference.observe(seconds)

        return observe

    async def serve_http(self, port: int, host: str, ssl_context=None, middlewares=()) -> tuple[Any, int]:
        """Serve ``/metrics`` (HTTPS with ``ssl_context``) on the running event loop.

        Returns the aiohttp ``AppRunner`` (``await runner.cleanup()`` stops it) and the bound port.
        """
        return await self.serve_registry_http(self.registry, port, host, ssl_context, middlewares)

    @staticmethod
    async def serve_registry_http(registry: CollectorRegistry, port: int, host: str, ssl_context=None,
                                  middlewares=()) -> tuple[Any, int]:
        """Serve ``registry`` at ``/metrics`` (the supervisor of ``--processes N`` serves all processes')."""
        from aiohttp import web
        from prometheus_client.aiohttp import make_aiohttp_handler

        app = web.Application(middlewares=list(middlewares))
        app.router.add_get("/metrics", make_aiohttp_handler(registry))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
        except BaseException:
            await runner.cleanup()
            raise
        bound = runner.addresses[0][1]
        logger.info("metrics on %s://%s:%d/metrics", "https" if ssl_context else "http", host, bound)
        return runner, bound


class DrainMeter:
    """Items finished per second over the last ``window_s`` seconds of batches."""

    def __init__(self, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self._clock = clock
        self._batches: deque[tuple[float, float, int]] = deque()  # (started, finished, items)

    def record(self, items: int, started: float) -> None:
        """Count a batch of ``items`` that began at ``started`` and has just finished."""
        now = self._clock()
        self._batches.append((started, now, items))
        self._prune(now)

    def _prune(self, now: float) -> None:
        while self._batches and self._batches[0][1] < now - self.window_s:
            self._batches.popleft()

    def rate(self) -> float | None:
        """Items per second over the window (from the first batch's start in it); None without data."""
        now = self._clock()
        self._prune(now)
        if not self._batches:
            return None
        span = max(now - self._batches[0][0], 1e-3)  # wall time the window's batches cover
        return sum(b[2] for b in self._batches) / span

    def seconds_to_drain(self, items: int) -> float | None:
        """Time for ``items`` queued items to run at the measured rate; None before any batch ran."""
        rate = self.rate()
        return None if rate is None else items / rate
