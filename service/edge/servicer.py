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
        """Metric label of a requested model name."""
        return self.registry.label(name) if self.registry is not None else (name or "default")

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
        # Requests are scored concurrently; responses go out as they complete, carrying their
        # request_id. The first failing request ends the stream with its status.
        done: asyncio.Queue = asyncio.Queue()
        pending: set[asyncio.Task] = set()

        async def read() -> None:
            async for request in request_iterator:
                task = asyncio.create_task(self._score(request, context))
                pending.add(task)
                task.add_done_callback(done.put_nowait)

        reader = asyncio.create_task(read())
        reader.add_done_callback(lambda _: done.put_nowait(None))  # end of requests (or a read error)
        reading = True
        try:
            while reading or pending:
                task = await done.get()
                if task is None:
                    reader.result()  # re-raise a read error
                    reading = False
                    continue
                pending.discard(task)
                yield task.result()
        finally:
            for t in (reader, *pending):
                t.cancel()

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
