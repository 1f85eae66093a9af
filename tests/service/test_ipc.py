"""The edge <-> engine wire format: frames round-trip items and rows; errors keep their kind."""

from __future__ import annotations

import asyncio
import socket

import numpy as np
from rewardserve.service.domain import Encoded
from rewardserve.service.engine.ipc import error_from_wire, error_to_wire, frame, read_frame, recv_frame
from rewardserve.service.engine.postprocess import Row
from rewardserve.service.errors import DeadlineExpired, QueueFull


async def test_a_frame_round_trips_token_ids_and_rows():
    item = Encoded(np.arange(5, dtype=np.int64), np.zeros(5, np.int64), True)
    message = [(7, "hh", [item], 12.5), (8, None, [Row((1.0, 2.0), (0.3, 0.7), 2.0)], None)]
    reader = asyncio.StreamReader()
    data = frame(message) + frame("next")
    reader.feed_data(data[:3])  # a frame split over reads still arrives whole
    reader.feed_data(data[3:])
    got = await read_frame(reader)
    assert got[0][:2] == (7, "hh") and got[0][3] == 12.5 and got[1][2][0] == message[1][2][0]
    assert np.array_equal(got[0][2][0].ids, item.ids) and got[0][2][0].truncated
    assert await read_frame(reader) == "next"


def test_a_blocking_socket_reads_the_same_frames():
    a, b = socket.socketpair()
    with a, b:
        a.sendall(frame({"x": 1}))
        assert recv_frame(b) == {"x": 1}


def test_errors_keep_their_kind_message_and_retry_estimate():
    full = error_from_wire(error_to_wire(QueueFull("queue full", retry_after_s=1.5)))
    assert isinstance(full, QueueFull) and str(full) == "queue full" and full.retry_after_s == 1.5
    assert isinstance(error_from_wire(error_to_wire(DeadlineExpired("late"))), DeadlineExpired)
    # A failed batch's own error (any other exception) is INTERNAL on the edge, message kept for the log.
    other = error_from_wire(error_to_wire(ValueError("bad shape")))
    assert type(other) is RuntimeError and "ValueError: bad shape" in str(other)
