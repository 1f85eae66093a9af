"""Several gRPC listeners per process on one port: each serves every service; the port stays exclusive."""

from __future__ import annotations

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rewardserve.service.edge.ports import PortInUse
from rewardserve.service.edge.server import RewardServer

from rewardserve.v1 import reward_pb2 as pb
from rewardserve.v1 import reward_pb2_grpc

from .conftest import ServerThread, make_config

pytestmark = pytest.mark.e2e


def listening_sockets(port: int) -> int:
    return sum(1 for c in psutil.Process().net_connections(kind="tcp")
               if c.status == psutil.CONN_LISTEN and c.laddr.port == port)


def test_every_listener_serves_every_service_on_one_port(bundles):
    server = ServerThread(make_config(bundles, names=("pairwise",), grpc_listeners=3))
    try:
        assert listening_sockets(server.server.port) == 3
        for _ in range(12):  # a new connection each: the kernel spreads them over the listeners
            with grpc.insecure_channel(server.target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
                reply = reward_pb2_grpc.RewardServiceStub(channel).Score(
                    pb.ScoreRequest(items=[pb.Item(text="hi there")]), timeout=30)
                assert health.status == health_pb2.HealthCheckResponse.SERVING and len(reply.scores) == 1
    finally:
        server.stop()
    assert listening_sockets(server.server.port) == 0  # every listener stopped


def test_one_listener_when_set_to_one(bundles):
    server = ServerThread(make_config(bundles, names=("pairwise",), grpc_listeners=1))
    try:
        assert listening_sockets(server.server.port) == 1
    finally:
        server.stop()


async def test_a_second_server_on_a_port_its_listeners_share_is_refused(bundles):
    # The listeners bind with SO_REUSEPORT; a second server doing the same would silently take
    # half the connections. Its probe-bind (without SO_REUSEPORT) refuses the port instead.
    first = ServerThread(make_config(bundles, names=("pairwise",), grpc_listeners=2), wait_ready=False)
    try:
        second = RewardServer(make_config(bundles, names=("pairwise",), grpc_listeners=2, port=first.server.port))
        with pytest.raises(PortInUse, match=f"port 127.0.0.1:{first.server.port} is in use"):
            await second.start()
    finally:
        first.stop()


def test_grpc_listeners_must_be_at_least_one(bundles):
    with pytest.raises(ValueError, match="grpc_listeners must be >= 1, got 0"):
        make_config(bundles, names=("pairwise",), grpc_listeners=0)
