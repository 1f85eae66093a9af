"""The gRPC server: RewardService, KServe v2, health and reflection, metrics, HTTP, graceful shutdown.

The port opens at once with health NOT_SERVING (RPCs answer UNAVAILABLE); models load and
warm up in a thread, then health turns SERVING: the whole server (``""``), the RewardService,
and each model under :func:`model_health_name`. A model whose batcher task dies turns
NOT_SERVING (the whole server too when it is the default), then is restarted or stops the
server with exit code 1 (``on_batcher_failure``). On SIGTERM or SIGINT: health NOT_SERVING,
no new RPCs, accepted ones finish within ``grace_period_s``, exit code 0.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from rewardserve.service.config import ServiceConfig
from rewardserve.service.edge.convert import add_servicer
from rewardserve.service.edge.http_app import RewardHttpApp
from rewardserve.service.edge.kserve import SERVICE_NAME as KSERVE_SERVICE_NAME
from rewardserve.service.edge.kserve import KServeServicer
from rewardserve.service.edge.listeners import start_listeners, stop_listeners
from rewardserve.service.edge.peers import ReadyFlags
from rewardserve.service.edge.ports import probe_ports
from rewardserve.service.edge.security import Security
from rewardserve.service.edge.servicer import RewardServicer
from rewardserve.service.engine.batcher import RESTART_DELAY_S, Batcher
from rewardserve.service.engine.link import engine_registry
from rewardserve.service.engine.models import ModelRegistry
from rewardserve.service.metrics import ServiceMetrics

from rewardserve.enums import BatcherFailurePolicy
from rewardserve.kserve import grpc_predict_v2_pb2 as kserve_pb2
from rewardserve.v1 import reward_pb2

logger = logging.getLogger(__name__)

# On stop, calls in gRPC core but not yet in this loop would be cancelled (clients do not retry
# CANCELLED): for this long (at most half the grace period) new calls get UNAVAILABLE (draining).
REFUSAL_WINDOW_S = 0.25

SERVICE_NAME = reward_pb2.DESCRIPTOR.services_by_name["RewardService"].full_name
PEER_POLL_S = 0.1  # how often the others' readiness (serve --processes N), or a restarted batcher, is re-read
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def model_health_name(model: str) -> str:
    """The grpc.health.v1 service name of one served model (``rewardserve.v1.RewardService/hh``)."""
    return f"{SERVICE_NAME}/{model}"

Loader = Callable[[ServiceConfig, ServiceMetrics], ModelRegistry]


class RewardServer:
    """One server process's gRPC server, models and metrics endpoint.

    Example::

        server = RewardServer(ServiceConfig(models=(ModelSource("hh", "models/hh-onnx"),), port=0))
        await server.start()        # listening; models load in the background
        await server.wait_ready()   # loaded and warm: health SERVING
        print(server.port, server.metrics_port)
        await server.stop()
    """

    def __init__(self, config: ServiceConfig, metrics: ServiceMetrics | None = None,
                 loader: Loader = ModelRegistry.load, reuse_port: bool = False,
                 peers: tuple[ReadyFlags, int] | None = None):
        self.config = config
        # serve --processes N (edge/processes.py): share the ports, SERVING only while every process is (``peers``:
        # the flags, this process's index). Alone, never shared: a second server on a port in use fails.
        self.reuse_port = reuse_port
        self.peers = peers
        self._own_status = NOT_SERVING
        self._reported: int | None = None
        self.metrics = metrics or ServiceMetrics()
        self._loader = loader  # replaceable, e.g. to build default models before loading them
        self.servicer = RewardServicer(config, self.metrics)
        self.kserve = KServeServicer(self.servicer)  # same registry: KServe items share the batches
        self.http = RewardHttpApp(self.servicer, config, self.metrics)  # listens when http_port is set
        self.health = health.aio.HealthServicer()
        self._servers: list[grpc.aio.Server] = []  # the gRPC listeners (edge/listeners.py)
        self._metrics_http = None  # aiohttp AppRunner
        self.security: Security | None = None  # loaded in start(): reads the TLS and token files
        self._loading: asyncio.Task | None = None
        self.port: int | None = None
        self.metrics_port: int | None = None
        self.http_port: int | None = None
        self.fatal = asyncio.Event()  # set when a batcher died and on_batcher_failure is exit
        self._recovering: set[asyncio.Task] = set()

    async def start(self) -> None:
        """Listen on the gRPC, metrics and HTTP ports and start loading the models."""
        probe_ports(self.config, shared=self.reuse_port)  # a port in use: refused before anything listens
        self.security = security = Security.load(self.config, self.metrics)
        self.servicer.limit = security.guard.limit  # max_concurrent_requests, shared with HTTP
        await self._set_health(NOT_SERVING)
        for source in self.config.models:
            await self.health.set(model_health_name(source.name), NOT_SERVING)
        self._servers, self.port = await start_listeners(self.config.grpc_listeners, self.config.host, self.config.port,
                                                         security, self._register, shared=self.reuse_port)
        security.warn_if_exposed("gRPC", self.config.host, self.port)
        if self.config.metrics_port is not None:
            # Scrapes must work under overload: token checked, concurrency limit not applied.
            self._metrics_http, self.metrics_port = await self.metrics.serve_http(
                self.config.metrics_port, self.config.metrics_host, security.ssl_context,
                security.http_middlewares(limit_concurrency=False))
            security.warn_if_exposed("/metrics", self.config.metrics_host, self.metrics_port)
        if self.config.http_port is not None:
            # The one place the HTTP endpoint gets its TLS context and middlewares (auth, limits).
            self.http_port = await self.http.start(self.config.host, self.config.http_port, security.ssl_context,
                                                   security.http_middlewares(), reuse_port=self.reuse_port)
            security.warn_if_exposed("HTTP /get_reward", self.config.host, self.http_port)
        logger.info("listening on %s:%d (%s); loading %d models", self.config.host, self.port,
                    security.describe(), len(self.config.models))
        self._loading = asyncio.create_task(self._load())
        if self.peers is not None:
            self._peer_watch = asyncio.create_task(self._watch_peers())

    def _register(self, server: grpc.aio.Server) -> None:
        """Every service on one listener (undecodable requests reach the servicer: INVALID_ARGUMENT, not UNKNOWN)."""
        add_servicer(self.servicer, server, reward_pb2.DESCRIPTOR.services_by_name["RewardService"])
        add_servicer(self.kserve, server, kserve_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection((SERVICE_NAME, KSERVE_SERVICE_NAME, health.SERVICE_NAME,
                                             reflection.SERVICE_NAME), server)

    async def _load(self) -> None:
        registry = await asyncio.to_thread(self._loader, self.config, self.metrics)
        for model in registry.models.values():
            model.batcher.on_failure = self._batcher_failed
        registry.start()
        self.servicer.registry = registry
        for name in registry.models:
            await self.health.set(model_health_name(name), SERVING)
        await self._set_health(SERVING)
        logger.info("serving %s (default %s)", sorted(registry.models) + sorted(registry.composites), registry.default)
        if registry.failed:
            logger.warning("not serving %s: failed to load (on_model_error=skip)", sorted(registry.failed))
        logger.info("%s", usage_hint(self.config.host, self.port, self.metrics_port, registry.default))

    def _batcher_failed(self, batcher: Batcher, error: BaseException) -> None:
        task = asyncio.get_running_loop().create_task(self._recover(batcher))
        self._recovering.add(task)
        task.add_done_callback(self._recovering.discard)

    async def _recover(self, batcher: Batcher) -> None:
        """Health NOT_SERVING for a model whose batcher died; restart it, or ask the server to exit."""
        default = batcher.name == self.servicer.registry.default
        await self.health.set(model_health_name(batcher.name), NOT_SERVING)
        if default:
            await self._set_health(NOT_SERVING)
        policy = self.config.on_batcher_failure
        logger.error("model %s: batcher died; health NOT_SERVING for %s%s; on_batcher_failure=%s", batcher.name,
                     model_health_name(batcher.name), " and the whole server (default model)" if default else "",
                     policy.value)
        if policy is BatcherFailurePolicy.exit:
            self.fatal.set()
            return
        await asyncio.sleep(RESTART_DELAY_S)
        if self.servicer.draining:
            return
        batcher.restart()
        while not batcher.alive:  # an edge's remote batcher: once its link reaches the new engine
            await asyncio.sleep(PEER_POLL_S)
            if self.servicer.draining:
                return
        await self.health.set(model_health_name(batcher.name), SERVING)
        if default:
            await self._set_health(SERVING)

    async def wait_ready(self) -> None:
        """Wait until every model is loaded and warm; re-raise a loading error."""
        await asyncio.shield(self._loading)

    async def _stop_grpc(self, grace_s: float) -> None:
        if self._servers:
            loop = asyncio.get_running_loop()
            end = loop.time() + grace_s
            await asyncio.sleep(min(REFUSAL_WINDOW_S, grace_s / 2))
            # Accepted calls finish (within grace_s); then stop at once: health Watch streams never
            # end by themselves and would otherwise hold the process for the whole grace period.
            while calls_in_flight(self.metrics) and loop.time() < end:
                await asyncio.sleep(0.01)
            await stop_listeners(self._servers, max(end - loop.time(), 0.0) if calls_in_flight(self.metrics) else 0)

    async def _set_health(self, status) -> None:
        """This process's own status; with peers, SERVING is reported only while every process is ready."""
        self._own_status = status
        if self.peers is not None:
            flags, index = self.peers
            flags.set(index, status == SERVING)
            status = SERVING if status == SERVING and flags.all_ready() else NOT_SERVING
        if status != self._reported:
            self._reported = status
            for name in ("", SERVICE_NAME):  # "" is the whole server
                await self.health.set(name, status)

    async def _watch_peers(self) -> None:
        """Follow the other processes' readiness (a peer that restarts turns this one NOT_SERVING too)."""
        while not self.servicer.draining:
            await self._set_health(self._own_status)
            await asyncio.sleep(PEER_POLL_S)

    async def stop(self, grace_s: float | None = None) -> None:
        """Turn health NOT_SERVING, refuse new RPCs, let accepted ones finish, stop everything."""
        grace_s = self.config.grace_period_s if grace_s is None else grace_s
        if self.peers is not None:
            self.peers[0].set(self.peers[1], False)
        await self.health.enter_graceful_shutdown()
        self.servicer.draining = True  # stream messages and late RPCs: UNAVAILABLE, retry elsewhere
        # gRPC and HTTP drain together: new calls are refused, accepted ones finish first
        # (within grace_s; HTTP within grace_period_s).
        await asyncio.gather(self._stop_grpc(grace_s), self.http.stop())
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        if self.servicer.registry is not None:
            await self.servicer.registry.stop()
        if self._metrics_http is not None:
            await self._metrics_http.cleanup()
        # Calls handled, by method and status code: what clients saw, for the operator (and the
        # reliability suite's SIGTERM accounting).
        logger.info("server stopped; calls by method and code: %s", json.dumps(call_counts(self.metrics)))


def calls_in_flight(metrics: ServiceMetrics) -> int:
    """Calls being handled now (every RPC and HTTP handler counts itself in ``in_flight``)."""
    return int(sum(s.value for family in metrics.in_flight.collect() for s in family.samples))


def call_counts(metrics: ServiceMetrics) -> dict[str, dict[str, int]]:
    """``{method: {code: calls}}`` from the request counter."""
    counts: dict[str, dict[str, int]] = {}
    for family in metrics.requests.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                by_code = counts.setdefault(sample.labels["method"], {})
                by_code[sample.labels["code"]] = by_code.get(sample.labels["code"], 0) + int(sample.value)
    return counts


def usage_hint(host: str, port: int, metrics_port: int | None, model: str) -> str:
    """How to call this server: a grpcurl line and a Python snippet."""
    target = f"{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"
    item = '{"pair": {"prompt": "\\n\\nHuman: How do I make friends?", "response": "\\n\\nAssistant: Join a club."}}'
    lines = [
        "ready. Try:",
        f"  grpcurl -plaintext -d '{{\"items\": [{item}], \"options\": {{\"model\": \"{model}\"}}}}' "
        f"{target} rewardserve.v1.RewardService/Score",
        f"  grpcurl -plaintext {target} grpc.health.v1.Health/Check",
        f"  python -c \"from rewardserve.service.client import RewardClient; c = RewardClient('{target}'); "
        f"print(c.score([('\\n\\nHuman: hi', '\\n\\nAssistant: hello!')], model='{model}'))\"",
    ]
    if metrics_port:
        lines.append(f"  curl -s http://{target.rsplit(':', 1)[0]}:{metrics_port}/metrics | grep rewardserve_")
    return "\n".join(lines)


async def run_server(config: ServiceConfig, loader: Loader = ModelRegistry.load, reuse_port: bool = False,
                     peers: tuple[ReadyFlags, int] | None = None) -> int:
    """Serve until SIGTERM or SIGINT (exit code 0) or a batcher dies with on_batcher_failure=exit (1)."""
    server = RewardServer(config, loader=loader, reuse_port=reuse_port, peers=peers)
    await server.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        stopping, fatal = asyncio.create_task(stop.wait()), asyncio.create_task(server.fatal.wait())
        await asyncio.wait({stopping, server._loading}, return_when=asyncio.FIRST_COMPLETED)
        if server._loading.done() and server._loading.exception() is not None:
            await server.stop(0)
            raise server._loading.exception()
        await asyncio.wait({stopping, fatal}, return_when=asyncio.FIRST_COMPLETED)
        failed = fatal.done()
        if failed:
            logger.critical("a batcher died (on_batcher_failure=exit): draining for up to %.1fs, then exit code 1",
                            config.grace_period_s)
        else:
            logger.info("signal received: draining for up to %.1fs", config.grace_period_s)
        stopping.cancel()
        fatal.cancel()
        await server.stop()
        return 1 if failed else 0
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def serve(config: ServiceConfig, reuse_port: bool = False, peers: tuple[ReadyFlags, int] | None = None,
          engine: str | None = None) -> int:
    """Run one server process (blocking; ``engine``: the engine process's socket, for an edge); the exit code."""
    loader = ModelRegistry.load if engine is None else engine_registry(engine)
    return asyncio.run(run_server(config, loader=loader, reuse_port=reuse_port, peers=peers))
