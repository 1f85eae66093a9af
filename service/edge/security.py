"""The server's security settings in one object: TLS, bearer tokens, request limits, exposure.

Built once at startup (every file is read and checked then, errors name the setting and the
file), and used by :mod:`service.server` to open the gRPC port and the HTTP endpoints the
same way. What each part does lives in :mod:`service.tls` and :mod:`service.auth`.

Example::

    security = Security.load(config, metrics)
    server = grpc.aio.server(interceptors=security.interceptors(), options=security.grpc_options())
    port = security.add_port(server, "127.0.0.1:50051")
    app = web.Application(middlewares=security.http_middlewares(),
                          client_max_size=security.max_request_bytes)
    web.TCPSite(runner, host, port, ssl_context=security.ssl_context)
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from dataclasses import dataclass

import grpc
from rewardserve.service.config import ServiceConfig
from rewardserve.service.edge.auth import Guard, GuardInterceptor, http_middleware, load_tokens
from rewardserve.service.edge.status import CallLimit
from rewardserve.service.edge.tls import ServerTLS
from rewardserve.service.metrics import ServiceMetrics

logger = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """Whether a bind address is reachable from this machine only."""
    host = host.strip().removeprefix("[").removesuffix("]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


@dataclass(frozen=True)
class Security:
    """TLS files (None: plaintext), the token and concurrency guard, the request size limit."""

    tls: ServerTLS | None
    guard: Guard
    max_request_bytes: int
    max_connection_age_s: float = 0.0

    @classmethod
    def load(cls, config: ServiceConfig, metrics: ServiceMetrics) -> Security:
        """Read and check the TLS and token files; raise ValueError naming a bad one."""
        tls = ServerTLS.load(config)
        guard = Guard(load_tokens(config), CallLimit(config.max_concurrent_requests, metrics), metrics)
        return cls(tls, guard, config.max_request_bytes, config.max_connection_age_s)

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The HTTP endpoints' TLS context (None: plain HTTP)."""
        return None if self.tls is None else self.tls.ssl_context

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """The gRPC server's interceptors: with tokens, one that authenticates every service but health.

        None without tokens: the concurrency limit is taken by each method's wrapper, so the
        default path has no interceptor (one costs a wrapped handler per call).
        """
        return [GuardInterceptor(self.guard)] if self.guard.auth_required else []

    def grpc_options(self) -> list[tuple[str, int]]:
        """gRPC server options; larger messages fail with RESOURCE_EXHAUSTED from gRPC itself.

        With ``max_connection_age_s``, gRPC sends GOAWAY to a connection that old (+-10% jitter)
        and lets its calls finish: the client reconnects and re-resolves its target, which is
        how a long-lived ``dns:///`` client finds replicas added since it connected.
        """
        options = [("grpc.max_receive_message_length", self.max_request_bytes)]
        if self.max_connection_age_s > 0:
            options.append(("grpc.max_connection_age_ms", max(1, round(self.max_connection_age_s * 1000))))
        return options

    def add_port(self, server: grpc.aio.Server, address: str) -> int:
        """Listen on ``address`` with TLS when configured; return the port (0: failed)."""
        if self.tls is None:
            return server.add_insecure_port(address)
        return server.add_secure_port(address, self.tls.grpc_credentials())

    def http_middlewares(self, limit_concurrency: bool = True) -> list:
        """aiohttp middlewares: the same token check and concurrency limit as gRPC."""
        return [http_middleware(self.guard, limit_concurrency)]

    def describe(self) -> str:
        """One line for the log: TLS mode and whether tokens are required."""
        tls = "off" if self.tls is None else ("mutual" if self.tls.mutual else "on")
        return f"TLS {tls}, bearer tokens {'required' if self.guard.auth_required else 'off'}"

    def warn_if_exposed(self, what: str, host: str, port: int | None) -> None:
        """Log a warning when ``what`` listens beyond loopback without TLS or without tokens."""
        if is_loopback(host):
            return
        missing = [name for name, on in (("TLS", self.tls is not None), ("bearer tokens", self.guard.auth_required))
                   if not on]
        if missing:
            logger.warning(
                "%s listens on %s:%s (not loopback) without %s: anyone who can reach it can use it. "
                "Set tls_cert_file/tls_key_file and auth_token_file, or bind to 127.0.0.1",
                what, host or "*", port, " or ".join(missing),
            )
