"""Probe-bind a port before listening on it, so a port in use fails with a message naming the setting.

Without the probe gRPC and aiohttp fail with their own bind errors, and ports shared with
SO_REUSEPORT (``serve --processes N``) would silently split traffic with another server.

Example::

    port = probe_bind("127.0.0.1", 0, "port")   # a free port; OSError "port 127.0.0.1:N is in use" if taken
"""

from __future__ import annotations

import socket


def probe_bind(host: str, port: int, setting: str) -> int:
    """Bind ``host:port`` without SO_REUSEPORT; return the port (a free one for 0) or raise OSError naming it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT of an earlier run is fine
        try:
            s.bind((host, port))
        except OSError as e:
            raise OSError(f"{setting} {host}:{port} is in use ({e.strerror}): another server listens there; "
                          "stop it or choose another port") from None
        return s.getsockname()[1]
