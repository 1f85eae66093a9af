"""Bearer-token authentication and the concurrent-request limit, for gRPC and HTTP alike.

:class:`GuardInterceptor` is ONE grpc.aio server interceptor, so it covers every service on the
server (RewardService, KServe v2, reflection) except ``grpc.health.v1.Health``. Health stays
open on purpose: Kubernetes ``grpc:`` probes and load balancers cannot send a token, and it
tells nothing but SERVING / NOT_SERVING. :func:`http_middleware` does the same for the aiohttp
endpoints (``/health`` open). Tokens come from ``auth_token_file`` (one per line) and
``REWARDSERVE_AUTH_TOKEN`` (comma-separated), never from a command-line flag (``ps`` shows
those); several may be valid at once, for rotation. They are compared in constant time.

Example::

    guard = Guard(load_tokens(config), config.max_concurrent_requests, metrics)
    server = grpc.aio.server(interceptors=[GuardInterceptor(guard)])
    app = web.Application(middlewares=[http_middleware(guard)])
"""

from __future__ import annotations

import hmac
import inspect
import logging
from collections.abc import Iterable

import grpc
from rewardserve.service.config import ServiceConfig
from rewardserve.service.credential_files import check_token, read_token_file
from rewardserve.service.edge.status import CallLimit, http_status_for, status_for
from rewardserve.service.errors import ServiceError, Unauthenticated
from rewardserve.service.metrics import ServiceMetrics

logger = logging.getLogger(__name__)

# Methods and paths that need no token and do not count against max_concurrent_requests.
OPEN_GRPC_PREFIXES = ("/grpc.health.v1.Health/",)
OPEN_HTTP_PATHS = frozenset({"/health"})
SHORT_TOKEN = 16  # characters; shorter tokens are easy to guess


def load_tokens(config: ServiceConfig) -> tuple[str, ...]:
    """The accepted tokens: ``auth_token`` (comma-separated) and ``auth_token_file`` lines."""
    tokens = [t.strip() for t in config.auth_token.split(",") if t.strip()]
    for i, token in enumerate(tokens):
        check_token(token, f"auth_token (REWARDSERVE_AUTH_TOKEN): token {i + 1}")
    if config.auth_token_file is not None:
        tokens += read_token_file("auth_token_file", config.auth_token_file)
    if any(len(t) < SHORT_TOKEN for t in tokens):
        logger.warning("some bearer tokens are shorter than %d characters: easy to guess", SHORT_TOKEN)
    return tuple(dict.fromkeys(tokens))


class Guard:
    """Bearer tokens (checked in constant time) and the shared :class:`CallLimit`.

    gRPC: :class:`GuardInterceptor` authenticates (installed only when tokens are required); the
    limit is taken in :func:`~rewardserve.service.edge.status.grpc_errors`. HTTP:
    :func:`http_middleware` does both.
    """

    def __init__(self, tokens: Iterable[str], limit: CallLimit, metrics: ServiceMetrics):
        self._tokens = tuple(t.encode() for t in tokens)
        self.limit = limit
        self.metrics = metrics

    @property
    def auth_required(self) -> bool:
        """Whether calls must carry a bearer token."""
        return bool(self._tokens)

    def authenticate(self, protocol: str, authorization: str | None) -> None:
        """Raise Unauthenticated unless ``authorization`` is ``Bearer <an accepted token>``."""
        if not self._tokens:
            return
        scheme, _, given = (authorization or "").strip().partition(" ")
        if not authorization:
            problem = "missing 'authorization: Bearer <token>'"
        elif scheme.lower() != "bearer" or not given.strip():
            problem = "authorization must be 'Bearer <token>'"
        else:
            candidate = given.strip().encode("utf-8", "replace")
            accepted = False
            for token in self._tokens:  # no early exit: timing shows neither which nor how much matched
                accepted |= hmac.compare_digest(token, candidate)
            if accepted:
                return
            problem = "invalid bearer token"
        self.metrics.rejected.labels(protocol, "unauthenticated").inc()
        raise Unauthenticated(problem)


_FACTORIES = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


class GuardInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates and admits every RPC except health checks; refusals go out as statuses.

    A refused call never reaches its servicer: UNAUTHENTICATED without an accepted token,
    RESOURCE_EXHAUSTED beyond ``max_concurrent_requests`` (codes from :mod:`service.errors`).
    """

    def __init__(self, guard: Guard):
        self.guard = guard

    async def intercept_service(self, continuation, handler_call_details):
        """Wrap the method's handler in the guard (health and unknown methods pass untouched)."""
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(OPEN_GRPC_PREFIXES):
            return handler
        authorization = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":  # gRPC lower-cases metadata keys
                authorization = value
        return self._wrap(handler, authorization)

    def _wrap(self, handler: grpc.RpcMethodHandler, authorization: str | None) -> grpc.RpcMethodHandler:
        attr, factory = _FACTORIES[(handler.request_streaming, handler.response_streaming)]
        behavior, guard = getattr(handler, attr), self.guard

        async def admit(context) -> None:
            try:
                guard.authenticate("grpc", authorization)
            except ServiceError as e:
                await context.abort(*status_for(e))

        if inspect.isasyncgenfunction(behavior):

            async def guarded_stream(request, context):
                await admit(context)
                async for response in behavior(request, context):
                    yield response

            guarded = guarded_stream
        else:

            async def guarded_call(request, context):
                await admit(context)
                result = behavior(request, context)
                return await result if inspect.isawaitable(result) else result

            guarded = guarded_call
        return factory(guarded, request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)


def http_middleware(guard: Guard, limit_concurrency: bool = True, open_paths=OPEN_HTTP_PATHS):
    """An aiohttp middleware: the same token check (HTTP 401) and limit (HTTP 429) as gRPC.

    ``limit_concurrency=False`` for endpoints that must answer under overload (``/metrics``).
    """
    from aiohttp import web

    @web.middleware
    async def guard_middleware(request: web.Request, handler):
        if request.path in open_paths:
            return await handler(request)
        try:
            guard.authenticate("http", request.headers.get("Authorization"))
            if limit_concurrency:
                guard.limit.acquire("http")
        except ServiceError as e:
            status, message = http_status_for(e)
            headers = {"WWW-Authenticate": "Bearer"} if isinstance(e, Unauthenticated) else None
            # The body every HTTP error has (status.http_errors): the message and the gRPC code name.
            body = {"error": message, "code": status_for(e)[0].name}
            return web.json_response(body, status=status, headers=headers)
        try:
            return await handler(request)
        finally:
            if limit_concurrency:
                guard.limit.release()

    return guard_middleware
