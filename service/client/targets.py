"""Client targets: one server, several replicas, or a DNS name that resolves to all of them.

The clients take any of::

    "127.0.0.1:50051"                          # one server
    ["10.0.0.5:50051", "10.0.0.6:50051"]       # several replicas (a list ...)
    "10.0.0.5:50051,10.0.0.6:50051"            # ... or a comma-separated string
    "dns:///rewardserve-headless:50051"        # a headless Kubernetes Service: every pod's IP

and open ONE channel whose ``round_robin`` load-balancing policy keeps a connection to every
replica and sends each RPC to the next ready one. gRPC itself drops a replica that goes away
(its connection fails) and adds it back when it returns; an RPC retried after UNAVAILABLE is a
new pick, so the retry goes to another replica. Several addresses become a static
``ipv4:``/``ipv6:`` target (host names are resolved once, here); use a ``dns:///`` name for a
set of replicas that changes (gRPC re-resolves it).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

# gRPC URI schemes a single target may start with (they are passed through untouched).
SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:", "xds:")

# Round robin instead of gRPC's default pick_first, which would send every RPC to one replica.
CHANNEL_OPTIONS: tuple[tuple[str, object], ...] = (("grpc.lb_policy_name", "round_robin"),)


def split_addresses(addresses: str | Sequence[str]) -> list[str]:
    """The addresses in a list or comma-separated string (a gRPC URI is kept whole)."""
    if isinstance(addresses, str):
        text = addresses.strip()
        parts = [text] if text.startswith(SCHEMES) else text.split(",")
    else:
        parts = list(addresses)
    parts = [p.strip() for p in parts if isinstance(p, str) and p.strip()]
    if not parts:
        raise ValueError(f"no server address given: {addresses!r}")
    return parts


def host_port(address: str) -> tuple[str, int]:
    """Split ``host:port`` or ``[v6]:port``; the error names the address."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address {address!r}: expected HOST:PORT (or a gRPC URI such as dns:///NAME:PORT)")
    return host.removeprefix("[").removesuffix("]"), int(port)


def _ips(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ValueError(f"cannot resolve {host!r}: {e.strerror}") from e
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


def channel_target(addresses: str | Sequence[str]) -> str:
    """The gRPC target string for one or several addresses (see the module docstring)."""
    parts = split_addresses(addresses)
    if len(parts) == 1:
        return parts[0]  # one address or a URI: gRPC resolves it (a name may give several IPs)
    uris = [p for p in parts if p.startswith(SCHEMES)]
    if uris:
        raise ValueError(f"a gRPC URI must be the only address, got {uris[0]!r} among {len(parts)}")
    resolved = [(port, _ips(host, port)) for host, port in map(host_port, parts)]
    # One static target holds one address family: IPv4 when every host has one, else IPv6.
    for version, scheme in ((4, "ipv4"), (6, "ipv6")):
        if all(any(ip.version == version for ip in ips) for _, ips in resolved):
            picked = dict.fromkeys(
                f"{ip}:{port}" if version == 4 else f"[{ip}]:{port}"
                for port, ips in resolved for ip in ips if ip.version == version
            )
            return f"{scheme}:{','.join(picked)}"
    raise ValueError(f"addresses {parts}: mix IPv4-only and IPv6-only hosts; use one address family")
