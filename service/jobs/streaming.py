"""Score a JSONL file chunk by chunk, through a server or in-process: ``rewardserve score`` and ``filter``.

The file is read lazily and at most ``max_in_flight`` chunks are being scored at once, so memory
holds about ``(max_in_flight + 1) x chunk_size`` records whatever the file's size. Results come
back in input order. Both scorers send items through the same batcher as the server.

Example::

    async with open_scorer("127.0.0.1:50051", None, ScoreSettings(model="toxicity")) as scorer:
        async for chunk, scores in scorer.stream("gen.jsonl", item_from_obj, batch_size=64, max_in_flight=4):
            ...
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardserve.service.domain import ItemScore, ModelInfo, validate_items
from rewardserve.service.errors import InvalidArgument

from rewardserve.enums import Truncation
from rewardserve.formatting import Item


class BadLine(ValueError):
    """A line that is not JSON or not a valid item; the message names ``file: line N``."""


@dataclass(frozen=True)
class Record:
    """One input line: its number, the parsed JSON and the item to score."""

    lineno: int
    obj: Any
    item: Item


@dataclass
class LineCounts:
    """Lines read and bad lines skipped (filled while reading)."""

    records: int = 0
    bad: int = 0


def read_items(path: str, to_item: Callable[[Any, str], Item], skip_bad: bool = False,
                 counts: LineCounts | None = None) -> Iterator[Record]:
    """Yield a Record per non-empty line of ``path`` ('-': stdin), lazily; bad lines raise or are counted."""
    counts = counts if counts is not None else LineCounts()
    stream = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    with stream:
        for lineno, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                record = Record(lineno, *_parse(line, lineno, to_item))
            except BadLine as e:
                if not skip_bad:
                    raise BadLine(f"{path}: {e}") from e
                counts.bad += 1
                continue
            counts.records += 1
            yield record


def _parse(line: str, lineno: int, to_item: Callable[[Any, str], Item]) -> tuple[Any, Item]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise BadLine(f"line {lineno}: invalid JSON: {e.msg}") from e
    try:
        item = to_item(obj, f"line {lineno}")
        validate_items([item], 1)
    except InvalidArgument as e:
        raise BadLine(str(e).replace("items[0]", f"line {lineno}")) from e
    return obj, item


def chunked(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    """Lists of ``size`` records (the last may be shorter)."""
    it = iter(records)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


ScoreFn = Callable[[list[Item]], Awaitable[list[ItemScore]]]


async def score_in_order(chunks: Iterable[list[Record]], score: ScoreFn,
                         max_in_flight: int) -> AsyncIterator[tuple[list[Record], list[ItemScore]]]:
    """Score chunks with at most ``max_in_flight`` requests pending; yield (chunk, scores) in order.

    A bad item reported by the scorer raises BadLine naming its input line.
    """
    if max_in_flight < 1:
        raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
    pending: deque[tuple[list[Record], asyncio.Task]] = deque()
    source = iter(chunks)
    try:
        # The next chunk is read only when a slot is free, in a thread: a slow pipe must not
        # stall the event loop that runs the requests already in flight.
        while (chunk := await asyncio.to_thread(next, source, None)) is not None:
            pending.append((chunk, asyncio.ensure_future(score([r.item for r in chunk]))))
            if len(pending) >= max_in_flight:
                yield await _finish(*pending.popleft())
        while pending:
            yield await _finish(*pending.popleft())
    finally:
        for _, task in pending:
            task.cancel()


async def _finish(chunk: list[Record], task: asyncio.Task) -> tuple[list[Record], list[ItemScore]]:
    try:
        return chunk, await task
    except InvalidArgument as e:  # name the input line, not the index in the request
        raise BadLine(re.sub(r"items\[(\d+)\]", lambda m: f"line {chunk[int(m[1])].lineno}", str(e))) from e


@dataclass(frozen=True)
class ScoreSettings:
    """What every request of a run asks: model (empty: default), truncation, normalisation, deadline."""

    model: str = ""
    truncation: Truncation | str | None = None
    normalize: bool = False
    timeout_s: float = 300.0


@dataclass
class Scorer:
    """A ready scorer: ``score(items)`` and the model's :class:`ModelInfo`."""

    score: ScoreFn
    info: ModelInfo

    def stream(self, path: str, to_item: Callable[[Any, str], Item], batch_size: int, max_in_flight: int,
               skip_bad: bool = False, counts: LineCounts | None = None
               ) -> AsyncIterator[tuple[list[Record], list[ItemScore]]]:
        """Score the JSONL file ``path`` in chunks of ``batch_size`` (see :func:`score_in_order`), in input order."""
        records = read_items(path, to_item, skip_bad, counts)
        return score_in_order(chunked(records, batch_size), self.score, max_in_flight)


def open_scorer(address: str | None, bundle: Path | None, settings: ScoreSettings, precision: str = "auto",
                provider: str = "auto", **client_kwargs: Any) -> AbstractAsyncContextManager[Scorer]:
    """The scorer of a run: through the server at ``address``, else in-process on ``bundle``.

    ``client_kwargs`` (TLS files, a token) go to the server's client; ``precision`` and ``provider``
    to the in-process one.
    """
    if address is not None:
        return server_scorer(address, settings, **client_kwargs)
    return local_scorer(bundle, settings, precision, provider)


@asynccontextmanager
async def server_scorer(address: str, settings: ScoreSettings, **client_kwargs: Any) -> AsyncIterator[Scorer]:
    """Score through a server (one address or several, see :mod:`service.targets`).

    ``client_kwargs`` go to :class:`AsyncRewardClient` (e.g. TLS files, a token).
    """
    from rewardserve.service.client.client import AsyncRewardClient, RewardServiceError

    async with AsyncRewardClient(address, timeout_s=settings.timeout_s, **client_kwargs) as client:

        async def score(items: list[Item]) -> list[ItemScore]:
            try:
                r = await client.score(items, model=settings.model, truncation=settings.truncation,
                                       normalize=settings.normalize)
            except RewardServiceError as e:
                if e.code.name == "INVALID_ARGUMENT":
                    raise InvalidArgument(e.details) from e
                raise RuntimeError(f"server {address}: {e}") from e
            return list(r.scores)

        try:
            info = await client.get_model(settings.model)
        except RewardServiceError as e:
            raise RuntimeError(f"server {address}: {e}") from e
        yield Scorer(score, info)


@asynccontextmanager
async def local_scorer(bundle: Path, settings: ScoreSettings, precision: str = "auto",
                       provider: str = "auto") -> AsyncIterator[Scorer]:
    """Score in-process: load the ONNX bundle behind the server's own batcher."""
    from rewardserve.service.config import ModelSource, ServiceConfig
    from rewardserve.service.domain import ScoreOptions
    from rewardserve.service.engine.models import ModelRegistry
    from rewardserve.service.metrics import ServiceMetrics

    from rewardserve.bundle import RewardSpec

    name = settings.model or bundle.name
    tokens = max(16384, RewardSpec.load(bundle).max_length)  # a budget that fits the bundle's max_length
    config = ServiceConfig(models=(ModelSource(name, str(bundle)),), precision=precision, provider=provider,
                           metrics_port=None, max_batch_tokens=tokens)
    registry = await asyncio.to_thread(ModelRegistry.load, config, ServiceMetrics(), False)
    registry.start()
    model = registry.get(name)
    options = ScoreOptions(truncation=None if settings.truncation is None else Truncation(settings.truncation),
                           normalize=settings.normalize)

    async def score(items: list[Item]) -> list[ItemScore]:
        return await model.score(items, options, time.monotonic() + settings.timeout_s)

    try:
        yield Scorer(score, model.info)
    finally:
        await registry.stop()
