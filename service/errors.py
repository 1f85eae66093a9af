"""Domain errors of the service: plain exceptions with a message fit to send to the client.

Code anywhere in the service raises these; ``code`` names the gRPC status they stand for, and
the edge maps them to gRPC and HTTP statuses in one place (:mod:`rewardserve.service.edge.status`).
No grpc import here: the engine, backends and client SDK use these without the server's stack.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: an error with a message fit to send to the client."""

    code = "INTERNAL"  # the name of a grpc.StatusCode

    def __init__(self, message: str = "", *, retry_after_s: float | None = None):
        super().__init__(message)
        # Back-pressure: when known, how long until a retry can succeed (HTTP Retry-After,
        # gRPC grpc-retry-pushback-ms); None when the server cannot tell.
        self.retry_after_s = retry_after_s


class InvalidArgument(ServiceError, ValueError):
    """Bad input; the message names the field and item index (``items[3].text: empty``)."""

    code = "INVALID_ARGUMENT"


class ModelNotFound(ServiceError):
    """The request names a model the server does not hold."""

    code = "NOT_FOUND"


class QueueFull(ServiceError):
    """The model's bounded queue cannot take the request's items now (backpressure)."""

    code = "RESOURCE_EXHAUSTED"


class DeadlineExpired(ServiceError):
    """The request's deadline passed before its items were scored; they were not run."""

    code = "DEADLINE_EXCEEDED"


class Unavailable(ServiceError):
    """The server is loading models or draining; retry elsewhere or later."""

    code = "UNAVAILABLE"


class Unauthenticated(ServiceError):
    """The call carries no bearer token, or one the server does not accept."""

    code = "UNAUTHENTICATED"


class Overloaded(ServiceError):
    """The server already handles ``max_concurrent_requests`` calls; retry later or elsewhere."""

    code = "RESOURCE_EXHAUSTED"
