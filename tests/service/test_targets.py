"""Several addresses: target parsing, and real balancing and failover over two local servers."""

from __future__ import annotations

import asyncio

import pytest
from rewardserve.service.client import AsyncRewardClient, RewardClient
from rewardserve.service.client.targets import channel_target, split_addresses

from tests.service.conftest import ServerThread, make_config

pytestmark = pytest.mark.e2e


def test_channel_target_forms():
    assert channel_target("127.0.0.1:50051") == "127.0.0.1:50051"
    assert channel_target("dns:///rewardserve-headless.ns.svc:50051") == "dns:///rewardserve-headless.ns.svc:50051"
    assert channel_target(["127.0.0.1:1", "10.0.0.2:2"]) == "ipv4:127.0.0.1:1,10.0.0.2:2"
    assert channel_target(" 127.0.0.1:1, 127.0.0.1:2 ,") == "ipv4:127.0.0.1:1,127.0.0.1:2"
    assert channel_target(["[::1]:1", "[::1]:2"]) == "ipv6:[::1]:1,[::1]:2"
    assert channel_target(["localhost:7", "127.0.0.1:8"]) == "ipv4:127.0.0.1:7,127.0.0.1:8"  # resolved once
    assert split_addresses("ipv4:127.0.0.1:1,127.0.0.1:2") == ["ipv4:127.0.0.1:1,127.0.0.1:2"]


@pytest.mark.parametrize(("addresses", "message"), [
    ("", "no server address"),
    ([], "no server address"),
    (["127.0.0.1:1", "nohostport"], "expected HOST:PORT"),
    (["127.0.0.1:1", "127.0.0.1:99999"], "expected HOST:PORT"),
    (["dns:///a:1", "127.0.0.1:2"], "must be the only address"),
    (["127.0.0.1:1", "[::1]:2"], "use one address family"),
    (["127.0.0.1:1", "no-such-host.invalid:2"], "cannot resolve 'no-such-host.invalid'"),
])
def test_channel_target_errors(addresses, message):
    with pytest.raises(ValueError, match=message):
        channel_target(addresses)


def _score_requests(server: ServerThread) -> float:
    value = server.server.metrics.registry.get_sample_value(
        "rewardserve_requests_total", {"method": "Score", "model": "pairwise", "code": "OK"})
    return value or 0.0


@pytest.fixture()
def replicas(bundles):
    """Two independent servers of the tiny pairwise bundle on free ports."""
    servers = [ServerThread(make_config(bundles, names=("pairwise",), metrics_port=None)) for _ in range(2)]
    yield servers
    for s in servers:
        if s.thread.is_alive():
            s.stop()


def test_sync_client_balances_and_survives_a_dead_replica(replicas):
    a, b = replicas
    with RewardClient([a.target, b.target], timeout_s=10) as client:
        solo = client.score(["hello there"]).scores[0].reward
        for _ in range(20):
            assert client.score(["hello there"]).scores[0].reward == pytest.approx(solo, abs=1e-6)
        # round_robin: both replicas took a fair share (gRPC alternates once both are connected)
        assert _score_requests(a) >= 5 and _score_requests(b) >= 5
        assert _score_requests(a) + _score_requests(b) == 21

        a.stop()
        before_b = _score_requests(b)
        answers = [client.score(["hello there"]).scores[0].reward for _ in range(20)]
        assert answers == pytest.approx([solo] * 20, abs=1e-6)
        assert _score_requests(b) - before_b == 20  # every answer came from the live replica


async def test_async_client_balances_and_survives_a_dead_replica(replicas):
    a, b = replicas
    async with AsyncRewardClient(f"{a.target},{b.target}", timeout_s=10) as client:
        # round_robin picks among READY connections: until the second one is up, every call
        # goes to the first. Wait for both (bounded) before firing calls at once.
        for _ in range(50):
            await client.score(["connect"])
            if _score_requests(a) and _score_requests(b):
                break
        before_a, before_b = _score_requests(a), _score_requests(b)
        results = await asyncio.gather(*(client.score([f"text {i}"]) for i in range(30)))
        assert len(results) == 30
        assert _score_requests(a) - before_a >= 5 and _score_requests(b) - before_b >= 5

        await asyncio.to_thread(a.stop)
        results = await asyncio.gather(*(client.score([f"text {i}"]) for i in range(30)))
        assert [len(r.scores) for r in results] == [1] * 30


def test_dns_uri_target(server):
    """A ``dns:///`` name (what a headless Service gives) goes to gRPC's resolver as it is."""
    with RewardClient(f"dns:///localhost:{server.server.port}", timeout_s=10) as client:
        assert len(client.score(["hello"]).scores) == 1


def test_unavailable_retry_goes_to_the_other_replica(replicas):
    """A replica that answers UNAVAILABLE (draining) while still connected: each retry is a new pick."""
    a, b = replicas
    with RewardClient([a.target, b.target], timeout_s=10) as client:
        client.score(["warm up both connections"])
        client.score(["warm up both connections"])
        a.server.servicer.draining = True  # every RPC to a: UNAVAILABLE, connection kept open
        before_b = _score_requests(b)
        for _ in range(10):
            assert len(client.score(["hello"]).scores) == 1
        refused = a.server.metrics.registry.get_sample_value(
            "rewardserve_requests_total", {"method": "Score", "model": "pairwise", "code": "UNAVAILABLE"})
    assert _score_requests(b) - before_b == 10
    assert refused and refused >= 3  # round_robin did send calls to a; their retries went to b
