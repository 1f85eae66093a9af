"""The gRPC servicer: each RPC parses (pb -> domain), awaits the model, builds the response.

Errors are mapped to status codes by :func:`rewardserve.service.edge.status.grpc_errors`, nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
from rewardserve.service import domain
from rewardserve.service.config import ServiceConfig
from rewardserve.service.edge import convert
from rewardserve.service.edge.status import CallLimit, grpc_errors
from rewardserve.service.engine.models import ModelRegistry
from rewardserve.service.errors import Unavailable
from rewardserve.service.metrics import ServiceMetrics

from rewardserve.activations import sigmoid
from rewardserve.v1 import reward_pb2 as pb
from rewardserve.v1 import reward_pb2_grpc

logger = logging.getLogger(__name__)


def _options_model(servicer: RewardServicer, request) -> str:
    return servicer.model_label(request.options.model)


def _model(servicer: RewardServicer, request) -> str:
    return servicer.model_label(request.model)


class RewardServicer(reward_pb2_grpc.RewardServiceServicer):
    """Implements ``rewardserve.v1.RewardService`` over a :class:`ModelRegistry`.

    Example::

        servicer = RewardServicer(config, metrics)
        servicer.registry = ModelRegistry.load(config, metrics)  # until then: UNAVAILABLE
    """

    def __init__(self, config: ServiceConfig, metrics: ServiceMetrics):
        self.config = config
        self.metrics = metrics
        self.registry: ModelRegistry | None = None  # set once every model is loaded and warm
        self.draining = False
        self.limit: CallLimit | None = None  # max_concurrent_requests; the server sets it

    def models(self) -> ModelRegistry:
        """The loaded models; Unavailable while they load or the server drains (every protocol asks here)."""
        if self.draining:
            raise Unavailable("server is shutting down")
        if self.registry is None:
            raise Unavailable("models are still loading")
        return self.registry

    def model_label(self, name: str) -> str:
        """Metric label of a requested model name: a configured one, or "unknown" (bounded, even while loading)."""
        if self.registry is not None:
            return self.registry.label(name)
        known = {m.name for m in self.config.models} | {c.name for c in self.config.composites}
        name = name or self.config.models[0].name
        return name if name in known else "unknown"

    def deadline(self, context: grpc.aio.ServicerContext) -> float:
        """The call's deadline as a time.monotonic() time (request_timeout_s when it carries none)."""
        remaining = context.time_remaining()
        # The client's deadline wins; request_timeout_s bounds only requests that carry none.
        return time.monotonic() + (self.config.request_timeout_s if remaining is None else remaining)

    async def _score(self, request: pb.ScoreRequest, context) -> pb.ScoreResponse:
        req = convert.score_request_from_pb(request, self.config.max_items_per_request)
        model = self.models().get(req.options.model)
        scores = await model.score(req.items, req.options, self.deadline(context))
        return convert.score_result_to_pb(domain.ScoreResult(tuple(scores), model.name, req.request_id))

    @grpc_errors("Score", _options_model)
    async def Score(self, request, context):
        return await self._score(request, context)

    @grpc_errors("ScoreStream")
    async def ScoreStream(self, request_iterator, context):
        # Messages are scored concurrently and answered as they complete (carrying request_id);
        # the first failing one ends the stream with its status. A message is in flight from
        # when it is read until its response is written: at most max_stream_in_flight per stream
        # (beyond it the stream is not read, so HTTP/2 flow control holds the client back, and a
        # client that writes without reading holds that many), each counted against
        # max_concurrent_requests; one over that limit ends the stream with RESOURCE_EXHAUSTED.
        room = asyncio.Semaphore(self.config.max_stream_in_flight)
        limit, held = self.limit, [0]  # held: messages in flight, each with a permit and a count
        done: asyncio.Queue = asyncio.Queue()
        pending: set[asyncio.Task] = set()

        def release() -> None:
            held[0] -= 1
            room.release()
            if limit is not None:
                limit.release()

        async def read() -> None:
            while True:
                await room.acquire()  # before reading: a full stream is not read
                try:
                    request = await request_iterator.__anext__()
                    if limit is not None:
                        limit.acquire("grpc")
                except BaseException:  # the end, a read error, or over max_concurrent_requests
                    room.release()
                    raise
                held[0] += 1
                task = asyncio.create_task(self._score(request, context))
                pending.add(task)
                task.add_done_callback(done.put_nowait)

        reader = asyncio.create_task(read())
        reader.add_done_callback(lambda _: done.put_nowait(None))  # end of requests (or an error)
        reading = True
        try:
            while reading or pending:
                task = await done.get()
                if task is None:
                    if not isinstance(reader.exception(), StopAsyncIteration):
                        reader.result()  # re-raise a read error or the limit's refusal
                    reading = False
                    continue
                pending.discard(task)
                yield task.result()
                release()  # written: the message leaves the stream's flight
        finally:
            for t in (reader, *pending):
                t.cancel()
            while held[0]:
                release()

    @grpc_errors("Compare", _options_model)
    async def Compare(self, request, context):
        req = convert.compare_request_from_pb(request, self.config.max_items_per_request)
        model = self.models().get(req.options.model)
        names = ("pairs[{}].response_a", "pairs[{}].response_b")
        scores = await model.score(req.items(), req.options, self.deadline(context),
                                   name_of=lambda i: names[i % 2].format(i // 2))
        # P(a > b) uses the raw rewards (Bradley-Terry), whether or not rewards are normalised;
        # for a composite, its totals.
        raw = [model.raw_reward(s) for s in scores]
        comparisons = tuple(
            domain.PairComparison(scores[i].reward, scores[i + 1].reward, float(sigmoid(raw[i] - raw[i + 1])))
            for i in range(0, len(scores), 2)
        )
        return convert.compare_result_to_pb(domain.CompareResult(comparisons, model.name))

    @grpc_errors("ListModels")
    async def ListModels(self, request, context):
        registry = self.models()
        return convert.list_models_to_pb(registry.infos(), registry.default)

    @grpc_errors("GetModel", _model)
    async def GetModel(self, request, context):
        return convert.model_info_to_pb(self.models().get(request.model).info)
