"""Back-pressure answers clients can follow: ``Retry-After`` and ``grpc-retry-pushback-ms``.

When the server refuses work it says when to come back, computed from how fast the queues
drain (:class:`~rewardserve.service.metrics.DrainMeter`, measured by each batcher), not a
constant: a full queue (QueueFull) carries its model's ``items waiting / items per second``;
the concurrency limit (Overloaded) and other refusals without their own figure get the
server-wide ``sum of items waiting / sum of drain rates``. Before any batch has run there is no
rate, and the answer is :data:`FALLBACK_S`.

HTTP statuses by route (README "Back-pressure"): the vLLM and SGLang routes (``/classify``,
``/v1/classify``, ``/v1/embeddings``) answer **503** for every overload, because verl retries
5xx but raises at once on a 4xx; ``/get_reward`` and TEI's ``/predict`` keep **429** for a full
queue or the concurrency limit (OpenRLHF retries any error; TEI itself answers 429) and 503
while loading or draining. Every 429 and 503 carries ``Retry-After`` (whole seconds, at least 1).

No aiohttp here: the gRPC path uses it too; the HTTP middleware is
:func:`~rewardserve.service.edge.http_common.backpressure_middleware`.

Example::

    context.abort(code, message, pushback_metadata(exc, servicer.registry))   # gRPC
    retry_after_header(retry_after_s(exc, registry))                         # HTTP: "2"
"""

from __future__ import annotations

import math

FALLBACK_S = 1.0  # no batch has run yet (or models are loading): no measured rate to go by
MAX_RETRY_AFTER_S = 60.0
OVERLOAD_503_PATHS = frozenset({"/classify", "/v1/classify", "/v1/embeddings"})  # verl retries 5xx only
PUSHBACK_KEY = "grpc-retry-pushback-ms"


def server_drain_s(registry) -> float | None:
    """Seconds for every model's queue to run at the measured rates (None: nothing measured)."""
    if registry is None:
        return None
    batchers = [m.batcher for m in registry.models.values()]
    rates = [r for r in (b.drain.rate() for b in batchers) if r]
    if not rates:
        return None
    return sum(b.depth for b in batchers) / sum(rates)


def retry_after_s(exc: BaseException | None, registry) -> float:
    """When a refused call should come back: the error's own estimate, else the server's."""
    seconds = getattr(exc, "retry_after_s", None)
    if seconds is None:
        seconds = server_drain_s(registry)
    return min(FALLBACK_S if seconds is None else seconds, MAX_RETRY_AFTER_S)


def retry_after_header(seconds: float) -> str:
    """HTTP ``Retry-After`` is whole seconds: round up, at least 1."""
    return str(max(1, math.ceil(seconds)))


def pushback_metadata(exc: BaseException, registry) -> tuple[tuple[str, str], ...]:
    """Trailing metadata for a RESOURCE_EXHAUSTED or UNAVAILABLE status: when to retry, in ms."""
    if getattr(exc, "code", None) not in ("RESOURCE_EXHAUSTED", "UNAVAILABLE"):
        return ()
    return ((PUSHBACK_KEY, str(max(1, round(retry_after_s(exc, registry) * 1000)))),)
