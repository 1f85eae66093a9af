"""``rewardserve health``: exit 0 when a server reports SERVING (container health checks use it)."""

from __future__ import annotations

import argparse
import sys

from rewardserve.service.cli import client_flags


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``health`` subcommand."""
    health = sub.add_parser("health", help="check a server's grpc.health.v1 status (exit 0 when SERVING)")
    client_flags.add_address(health, default="127.0.0.1:50051")
    health.add_argument("--service", default="", help="service name ('' = the whole server)")
    health.add_argument("--timeout-s", type=float, default=3.0, help="deadline of the check")
    client_flags.add_security(health)
    health.set_defaults(handler=_health)


def _health(args: argparse.Namespace) -> int:
    """Exit 0 when the server reports SERVING, 1 otherwise."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from rewardserve.service.client.credentials import bearer_metadata, open_channel

    security = client_flags.security(args)
    token = security.pop("token")  # health needs none, but a proxy in front may
    with open_channel(args.address, (), **security) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout_s,
                metadata=bearer_metadata(token))
        except grpc.RpcError as e:
            print(f"{args.address}: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{args.address}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1
