"""What edge processes and the engine process say to each other (``serve --engine shared``).

One Unix socket per edge process, in the supervisor's private work directory (mode 0700: only
the server's own user can connect, which is what makes pickle acceptable here). Each message is
a frame: a 4-byte big-endian length, then a pickle.

* engine -> edge, once on connect: ``Hello`` (the models it serves, as ``GetModel`` shows them).
* edge -> engine: a list of requests, ``(request_id, model, [Encoded, ...], deadline)``; the
  deadline is a ``time.monotonic()`` time, which every process on the host shares.
* engine -> edge: a list of answers, ``(request_id, rows, error)``: one row per item, or an
  error that fails the whole request (:func:`error_to_wire` / :func:`error_from_wire`).

Each side gathers what one event-loop turn produced into one frame (:class:`Outbox`).
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
from dataclasses import dataclass

from rewardserve.service.domain import ModelInfo
from rewardserve.service.errors import (
    DeadlineExpired,
    InvalidArgument,
    ModelNotFound,
    QueueFull,
    Unavailable,
)

from rewardserve.manifest import VariantInfo

HEADER = struct.Struct("!I")
SOCKET_FILE = "engine.sock"
# The errors an answer may carry as themselves; any other (a failed batch) arrives as a plain
# RuntimeError with its message, which the edge answers INTERNAL as it would in one process.
ERRORS = {cls.__name__: cls for cls in (InvalidArgument, ModelNotFound, QueueFull, DeadlineExpired, Unavailable)}


@dataclass(frozen=True)
class Hello:
    """What the engine serves: each model's info and variant, the ones that failed, the default."""

    models: dict[str, tuple[ModelInfo, VariantInfo]]
    failed: dict[str, str]
    default: str


class Outbox:
    """Messages of one event-loop turn, written as one frame when the turn ends (while ``writer`` is set)."""

    def __init__(self, writer: asyncio.StreamWriter | None = None):
        self.writer = writer
        self.items: list = []

    def add(self, item: object) -> None:
        self.items.append(item)
        if len(self.items) == 1:
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write what was added (kept until a writer is set)."""
        if self.writer is not None and self.items:
            self.writer.write(frame(self.items))
            self.items = []

    def close(self) -> None:
        """Close the writer, if any; what is added from now on waits for the next one."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def frame(message: object) -> bytes:
    """One message as bytes to write."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> object:
    """The next message; asyncio.IncompleteReadError when the other side has gone."""
    (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    return pickle.loads(await reader.readexactly(size))


def error_to_wire(error: BaseException) -> tuple[str, str, float | None]:
    """An exception as (class name, message, retry_after_s)."""
    return type(error).__name__, str(error), getattr(error, "retry_after_s", None)


def error_from_wire(error: tuple[str, str, float | None]) -> Exception:
    """The exception the engine raised, rebuilt on the edge."""
    name, message, retry_after_s = error
    cls = ERRORS.get(name)
    if cls is None:
        return RuntimeError(f"engine process: {name}: {message}")
    return cls(message, retry_after_s=retry_after_s)


def recv_frame(sock: socket.socket) -> object:
    """The next message from a blocking socket (the edge's hello, read before its event loop uses it)."""
    (size,) = HEADER.unpack(_recv_exactly(sock, HEADER.size))
    return pickle.loads(_recv_exactly(sock, size))


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("engine process closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
