"""max_connection_age_s: the server closes (GOAWAY) connections past that age; clients reconnect.

This is what lets a long-lived ``dns:///`` client find replicas added after it connected
(deploy/README.md "Running several replicas"): on a new connection gRPC re-resolves the name.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest
from rewardserve.service.client import RewardClient
from rewardserve.service.config import ServiceConfig
from rewardserve.service.edge.security import Security
from rewardserve.service.metrics import ServiceMetrics

from rewardserve.enums import Precision
from tests.service.conftest import ServerThread, _export, make_config

AGE_S = 0.5
PATIENCE_S = 60.0  # an upper bound for "eventually", not a timing under test


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return {"pairwise": _export(tmp_path_factory.mktemp("age"), "pairwise", "bert", "pairwise", (Precision.fp32,))}


class CountingProxy:
    """A TCP relay on loopback that counts the connections it accepted (one per HTTP/2 connection)."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.accepted += 1
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def test_the_option_becomes_the_grpc_server_option(bundle):
    config = make_config(bundle, names=("pairwise",), max_connection_age_s=2.5)
    assert ("grpc.max_connection_age_ms", 2500) in Security.load(config, ServiceMetrics()).grpc_options()
    off = make_config(bundle, names=("pairwise",))
    assert off.max_connection_age_s == 0
    assert not [k for k, _ in Security.load(off, ServiceMetrics()).grpc_options() if k == "grpc.max_connection_age_ms"]
    with pytest.raises(ValueError, match="max_connection_age_s must be >= 0"):
        ServiceConfig(models=config.models, max_connection_age_s=-1)
    assert ServiceConfig.from_sources({"models": config.models}, {"REWARDSERVE_MAX_CONNECTION_AGE_S": "300"}
                                      ).max_connection_age_s == 300.0


def test_connections_are_closed_after_the_age_and_the_client_reconnects(bundle):
    server = ServerThread(make_config(bundle, names=("pairwise",), max_connection_age_s=AGE_S))
    proxy = CountingProxy(server.server.port)
    try:
        with RewardClient(f"127.0.0.1:{proxy.port}", timeout_s=30) as client:
            first = client.score(["a text to score"]).scores[0].reward
            assert proxy.accepted == 1
            # One channel, calls one after another: every new TCP connection is a reconnect after the
            # server closed the previous one (the channel never opens a second one otherwise).
            deadline = time.monotonic() + PATIENCE_S
            while proxy.accepted < 3 and time.monotonic() < deadline:
                assert client.score(["a text to score"]).scores[0].reward == pytest.approx(first, abs=1e-6)
                time.sleep(0.05)
            assert proxy.accepted >= 3, f"{proxy.accepted} connection(s) in {PATIENCE_S:.0f}s"
    finally:
        proxy.close()
        server.stop()


def test_without_the_option_one_connection_serves_every_call(bundle):
    server = ServerThread(make_config(bundle, names=("pairwise",)))
    proxy = CountingProxy(server.server.port)
    try:
        with RewardClient(f"127.0.0.1:{proxy.port}", timeout_s=30) as client:
            for _ in range(int(4 * AGE_S / 0.05)):  # sleeps alone outlast the age above 4 times
                client.score(["a text to score"])
                time.sleep(0.05)
            assert proxy.accepted == 1
    finally:
        proxy.close()
        server.stop()
