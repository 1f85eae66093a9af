"""What one load-generator request is: an awaitable call that returns on a good answer or raises."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Call = Callable[[Any], Awaitable[None]]  # sends one request payload; returns on a good answer


class RequestFailed(Exception):
    """A request that got no good answer; ``code`` names why (a gRPC status, ``HTTP 503``, ...)."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code
