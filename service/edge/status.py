"""The ONE place that maps exceptions to gRPC and HTTP statuses, and records each request.

Code below the edge raises the plain exceptions of :mod:`rewardserve.service.errors`;
:func:`grpc_errors` wraps every servicer method, turns an exception into a status (INTERNAL with
a generic message and a logged traceback for anything unexpected) and counts the request by
status code; :func:`http_errors` does the same for the HTTP handlers.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Callable

import grpc
from rewardserve.service.edge.backpressure import pushback_metadata
from rewardserve.service.edge.convert import Undecodable
from rewardserve.service.errors import InvalidArgument, Overloaded, ServiceError
from rewardserve.service.metrics import ServiceMetrics

logger = logging.getLogger(__name__)

class CallLimit:
    """``max_concurrent_requests``: calls in progress across gRPC and HTTP; more are refused.

    Every endpoint runs on one event loop, so the counter needs no lock. gRPC methods acquire it
    in :func:`grpc_errors` (no interceptor on the default path), HTTP handlers in the auth
    middleware; health and ``/metrics`` are never limited.
    """

    def __init__(self, max_concurrent: int, metrics: ServiceMetrics):
        self.max_concurrent = max_concurrent
        self.active = 0
        self.metrics = metrics

    def acquire(self, protocol: str) -> None:
        """Count a call in, or raise Overloaded when ``max_concurrent`` are in progress."""
        if self.active >= self.max_concurrent:
            self.metrics.rejected.labels(protocol, "overloaded").inc()
            raise Overloaded(f"server busy: {self.active} requests in progress, at most {self.max_concurrent} "
                             "(max_concurrent_requests); retry later or on another replica")
        self.active += 1

    def release(self) -> None:
        """Count a call out."""
        self.active -= 1


GENERIC_INTERNAL = "internal error (see server log)"


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """Return the status code and client-facing message for an exception."""
    if isinstance(exc, ServiceError):
        return grpc.StatusCode[exc.code], str(exc)
    if isinstance(exc, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED, "cancelled"
    return grpc.StatusCode.INTERNAL, GENERIC_INTERNAL


# The HTTP endpoints answer the same errors with the HTTP status matching the gRPC code.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def http_status_for(exc: BaseException) -> tuple[int, str]:
    """Return the HTTP status and client-facing message for an exception."""
    code, message = status_for(exc)
    return HTTP_STATUS.get(code, 500), message


class _Call:
    """One call's bookkeeping, for every protocol: in-flight gauge, concurrency slot, outcome metrics.

    ``with call:`` around the handler; an exception (or a cancellation) is recorded in ``exc``
    and ``code``, and suppressed for the caller to answer it.
    """

    __slots__ = ("code", "exc", "gauge", "limit", "method", "metrics", "model", "start")

    def __init__(self, metrics: ServiceMetrics, method: str, model: str):
        self.metrics, self.method, self.model = metrics, method, model
        self.start, self.limit, self.exc, self.code = time.perf_counter(), None, None, grpc.StatusCode.OK
        self.gauge = metrics.series(metrics.in_flight, method)

    def admit(self, limit: CallLimit | None) -> None:
        """Take a slot of ``limit`` (None: unlimited), released when the call ends."""
        if limit is not None:
            limit.acquire("grpc")
            self.limit = limit

    def __enter__(self) -> _Call:
        self.gauge.inc()
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if self.limit is not None:
            self.limit.release()
        self.gauge.dec()
        answered = isinstance(exc, (Exception, asyncio.CancelledError))  # not GeneratorExit: a closed stream
        if answered:
            self.exc, self.code = exc, status_for(exc)[0]
            if self.code is grpc.StatusCode.INTERNAL:
                logger.error("%s failed", self.method, exc_info=exc)
        self.metrics.observe_request(self.method, self.model, self.code.name, time.perf_counter() - self.start)
        return answered


def http_errors(method: str, model_of: Callable[[object, object], str] | None = None):
    """Decorate an aiohttp handler method like :func:`grpc_errors` does a servicer method.

    An exception becomes ``{"error": message, "code": "NOT_FOUND"}`` with the HTTP status of
    its gRPC code (:data:`HTTP_STATUS`); the request is counted in the same metrics as RPCs,
    ``code`` labelled with the gRPC code name so errors by code add up across protocols.
    """

    def decorate(fn):
        @functools.wraps(fn)
        async def wrapper(self, request):
            with _Call(self.metrics, method, model_of(self, request) if model_of else "") as call:
                return await fn(self, request)
            if isinstance(call.exc, asyncio.CancelledError):
                raise call.exc  # the client went away: nobody to answer
            from aiohttp import web  # here, not at the top: the gRPC-only path never needs it

            status, message = http_status_for(call.exc)
            return web.json_response({"error": message, "code": call.code.name}, status=status)

        return wrapper

    return decorate


def grpc_errors(method: str, model_of: Callable[[object, object], str] | None = None):
    """Decorate a servicer method: map exceptions to statuses and record request metrics.

    ``model_of(servicer, request)`` names the model for the metric label (unary methods); the
    servicer instance must have ``metrics`` (a :class:`ServiceMetrics`) and ``limit`` (a
    :class:`CallLimit`, or None for no limit): a call over the limit is RESOURCE_EXHAUSTED.
    """

    def decorate(fn):
        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def stream_wrapper(self, request_iterator, context):
                with _Call(self.metrics, method, "") as call:
                    call.admit(self.limit)
                    async for response in fn(self, _decoded(request_iterator), context):
                        yield response
                if call.exc is not None:
                    await _abort(context, call.exc, call.code, self)

            return stream_wrapper

        @functools.wraps(fn)
        async def unary_wrapper(self, request, context):
            undecodable = isinstance(request, Undecodable)
            with _Call(self.metrics, method, model_of(self, request) if model_of and not undecodable else "") as call:
                call.admit(self.limit)
                if undecodable:
                    raise InvalidArgument(request.describe())
                return await fn(self, request, context)
            await _abort(context, call.exc, call.code, self)

        return unary_wrapper

    return decorate


async def _decoded(request_iterator):
    """Yield the stream's requests; one that did not decode ends the stream with INVALID_ARGUMENT."""
    async for request in request_iterator:
        if isinstance(request, Undecodable):
            raise InvalidArgument(request.describe())
        yield request


async def _abort(context, exc: BaseException, code: grpc.StatusCode, servicer) -> None:
    if isinstance(exc, asyncio.CancelledError):
        raise exc  # the client went away: nobody to answer
    # RESOURCE_EXHAUSTED / UNAVAILABLE tell the client when to retry (grpc-retry-pushback-ms).
    registry = getattr(getattr(servicer, "core", servicer), "registry", None)  # KServe shares the native one
    await context.abort(code, status_for(exc)[1], pushback_metadata(exc, registry))
