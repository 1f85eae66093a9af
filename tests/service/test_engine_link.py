"""``--engine shared`` in one process: edge links submit token ids to an engine server's batchers."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from rewardserve.service.domain import Encoded
from rewardserve.service.engine.batcher import Batcher
from rewardserve.service.engine.engine_process import EngineServer
from rewardserve.service.engine.link import EngineLink, RemoteBatcher
from rewardserve.service.errors import DeadlineExpired, QueueFull, Unavailable
from rewardserve.service.metrics import ServiceMetrics


def enc(uid: int, length: int = 4) -> Encoded:
    return Encoded(np.full(length, uid, np.int64), np.zeros(length, np.int64), False)


class Runner:
    """Echoes each item's uid; records the batches; can be held shut."""

    def __init__(self):
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, items):
        self.gate.wait(10)
        self.batches.append([int(e.ids[0]) for e in items])
        return np.array([[e.ids[0]] for e in items], np.float32)


@contextlib.asynccontextmanager
async def engine_server(tmp_path):
    """An engine server over one model's real batcher and a fake runner, on a socket in tmp_path."""
    runner = Runner()
    batcher = Batcher("m", runner, ServiceMetrics(), max_batch_items=8, max_batch_tokens=1024, max_wait_ms=0,
                      max_queue_items=6)
    batcher.start()
    model = SimpleNamespace(batcher=batcher, info="info-of-m", variant="variant-of-m")
    server = EngineServer(SimpleNamespace(models={"m": model}, failed={"x": "bad file"}, default="m"))
    path = str(tmp_path / "engine.sock")
    listening = await asyncio.start_unix_server(server.handle, path=path)
    yield SimpleNamespace(path=path, runner=runner, batcher=batcher, server=server, listening=listening)
    listening.close()
    await batcher.stop()


async def edge(path: str, max_queue_items: int = 100) -> RemoteBatcher:
    link = EngineLink(path)
    hello = await asyncio.to_thread(link.connect, 5)
    assert hello.models == {"m": ("info-of-m", "variant-of-m")} and hello.failed == {"x": "bad file"}
    batcher = RemoteBatcher("m", link, max_queue_items)
    batcher.start()
    return batcher


async def wait_for(futures):
    return await asyncio.wait_for(asyncio.gather(*futures), 10)


async def test_items_from_two_edges_share_one_batch_and_answers_go_back_to_each(tmp_path):
    async with engine_server(tmp_path) as engine:
        a, b = await edge(engine.path), await edge(engine.path)
        engine.runner.gate.clear()  # the first batch runs while the rest queue up in the engine
        first = a.submit([enc(1)])
        await asyncio.sleep(0.2)
        queued = [a.submit([enc(2), enc(3)]), b.submit([enc(4)]), b.submit([enc(5)])]
        await asyncio.sleep(0.2)
        engine.runner.gate.set()
        assert [float(r[0]) for r in await wait_for(first)] == [1.0]
        answers = [[float(r[0]) for r in await wait_for(f)] for f in queued]
        assert answers == [[2.0, 3.0], [4.0], [5.0]]
        assert sorted(engine.runner.batches[1]) == [2, 3, 4, 5]  # one batch across both edge processes
        assert a.depth == b.depth == 0 and a.drain.rate() is not None


async def test_engine_refusals_and_expiries_reach_the_request(tmp_path):
    async with engine_server(tmp_path) as engine:
        a = await edge(engine.path)
        engine.runner.gate.clear()
        held = a.submit([enc(1)])
        await asyncio.sleep(0.2)
        fill = a.submit([enc(i) for i in range(2, 8)])  # the engine's queue (6 items) is full now
        with pytest.raises(QueueFull, match="queue full"):
            await wait_for(a.submit([enc(9)]))
        engine.runner.gate.set()
        await wait_for(held), await wait_for(fill)
        late = a.submit([enc(10)], deadline=0.0)  # already expired when its batch forms
        with pytest.raises(DeadlineExpired):
            await wait_for(late)


async def test_each_edge_bounds_what_it_waits_on(tmp_path):
    async with engine_server(tmp_path) as engine:
        a = await edge(engine.path, max_queue_items=2)
        engine.runner.gate.clear()
        held = a.submit([enc(1), enc(2)])
        with pytest.raises(QueueFull):
            a.submit([enc(3)])
        engine.runner.gate.set()
        await wait_for(held)


async def test_a_lost_engine_fails_waiting_requests_unavailable_and_reports_the_failure(tmp_path):
    async with engine_server(tmp_path) as engine:
        a = await edge(engine.path)
        failures = []
        a.on_failure = lambda batcher, error: failures.append(batcher)
        engine.runner.gate.clear()
        waiting = a.submit([enc(1)])
        await asyncio.sleep(0.2)
        engine.listening.close()
        for e in list(engine.server.edges):  # the engine process dies: its connections drop
            e.writer.transport.abort()
        with pytest.raises(Unavailable, match="engine process stopped"):
            await wait_for(waiting)
        assert failures == [a] and not a.alive
        with pytest.raises(Unavailable, match="not available"):
            a.submit([enc(2)])
        engine.runner.gate.set()
        # A new engine on the same socket: restart() reconnects and requests work again.
        listening = await asyncio.start_unix_server(engine.server.handle, path=engine.path)
        a.restart()
        for _ in range(100):
            if a.alive:
                break
            await asyncio.sleep(0.05)
        assert [float(r[0]) for r in await wait_for(a.submit([enc(3)]))] == [3.0]
        listening.close()


async def test_stop_waits_for_accepted_answers_then_closes_the_link(tmp_path):
    async with engine_server(tmp_path) as engine:
        a = await edge(engine.path)
        engine.runner.gate.clear()
        waiting = a.submit([enc(1)])
        stopping = asyncio.create_task(a.stop())
        await asyncio.sleep(0.2)
        assert not stopping.done()
        with pytest.raises(Unavailable):
            a.submit([enc(2)])
        engine.runner.gate.set()
        await asyncio.wait_for(stopping, 10)
        assert [float(r[0]) for r in await wait_for(waiting)] == [1.0] and not a.link.connected
