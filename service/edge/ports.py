"""Probe-bind a port before listening on it, so a port in use fails with a message naming the setting.

Without the probe gRPC and aiohttp fail with their own bind errors, and ports shared with
SO_REUSEPORT (``serve --processes N``) would silently split traffic with another server.

Example::

    port = probe_bind("127.0.0.1", 0, "port")   # a free port; PortInUse "port 127.0.0.1:N is in use" if taken
    probe_ports(config, shared=False)           # a server's own ports, before it listens on any
"""

from __future__ import annotations

import socket

from rewardserve.service.config import ServiceConfig


class PortInUse(OSError):
    """A configured port is taken; the message names the setting (the CLI prints it, exit code 2)."""


def probe_bind(host: str, port: int, setting: str) -> int:
    """Bind ``host:port`` without SO_REUSEPORT; return the port (a free one for 0) or raise PortInUse naming it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT of an earlier run is fine
        try:
            s.bind((host, port))
        except OSError as e:
            raise PortInUse(f"{setting} {host}:{port} is in use ({e.strerror}): another server listens there; "
                          "stop it or choose another port") from None
        return s.getsockname()[1]


def probe_ports(config: ServiceConfig, shared: bool) -> None:
    """Refuse a server's ports in use before it listens on any: the metrics port always; the gRPC and
    HTTP ports unless ``shared`` (SO_REUSEPORT among one server's processes: the supervisor probed them).
    Port 0 (any free one) needs no probe."""
    checks = [("metrics_port", config.metrics_host, config.metrics_port)]
    if not shared:
        checks += [("port", config.host, config.port), ("http_port", config.host, config.http_port)]
    for setting, host, port in checks:
        if port:
            probe_bind(host, port, setting)
