"""Packed rows: several items share one row of a batch, each seeing only itself (a block-diagonal mask).

A right-padded batch of short texts of different lengths spends much of its compute on padding
(the served batches of tweets ran at 0.81 real / padded tokens). Packing puts the items of a batch
into as few rows as first-fit decreasing finds, each row as long as the longest item or
``row_tokens``, whichever is longer. A packed model (``export/packed.py``) takes a 3-D
``attention_mask`` ``[rows, L, L]``, position ids that restart at every item, and
``segment_starts`` ``[rows, S]``, the offset of each item's first token; it returns one logits row
per segment ``[rows, S, labels]``. :func:`pack` builds those inputs from the padded batch every
backend is given, and :func:`unpack` takes the segments' logits back to the batch's order, so a
packed backend runs the same ``run(padded batch)`` as any other.

Example::

    packed, where = pack(pad_batch(items, pad_id), row_tokens=64)
    logits = unpack(session_output, where)      # [len(items), labels], in the items' order
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

SEGMENT_STARTS = "segment_starts"  # the input that marks a packed model
# Shortest packed row: wider rows hold more items but each token attends over the whole row. Tweets, weight-only
# int8, arrival-order batches of 8 / 16 / 32, one thread (benchmarks/packed_rows.py): rows >= 64 tokens ran 241 / 267
# / 292 items/s, >= 48 234 / 254 / 288, >= 96 223 / 243 / 287, >= 128 208 / 240 / 276.
ROW_TOKENS = 64


def pack(feeds: Mapping[str, np.ndarray], row_tokens: int = ROW_TOKENS) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Pack a right-padded batch; return the packed inputs and, per item, its (row, segment)."""
    lengths = [int(n) for n in feeds["attention_mask"].sum(axis=1)]
    rows = _first_fit(lengths, row_tokens)
    width, segments = max(sum(lengths[i] for i in r) for r in rows), max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), np.int64)
    types = np.zeros_like(ids)
    positions = np.zeros_like(ids)
    mask = np.zeros((len(rows), width, width), np.int64)
    starts = np.zeros((len(rows), segments), np.int64)
    where = np.zeros((len(lengths), 2), np.int64)
    source_types = feeds.get("token_type_ids")
    for r, members in enumerate(rows):
        offset = 0
        for s, i in enumerate(members):
            n = lengths[i]
            ids[r, offset : offset + n] = feeds["input_ids"][i, :n]
            if source_types is not None:
                types[r, offset : offset + n] = source_types[i, :n]
            positions[r, offset : offset + n] = np.arange(n)
            mask[r, offset : offset + n, offset : offset + n] = 1
            starts[r, s], where[i] = offset, (r, s)
            offset += n
        tail = np.arange(offset, width)
        mask[r, tail, tail] = 1  # a padding position sees itself: no softmax over nothing
    packed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "position_ids": positions,
              SEGMENT_STARTS: starts}
    return packed, where


def unpack(logits: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Segments' logits ``[rows, S, labels]`` -> one row per item, in the batch's order."""
    return logits[where[:, 0], where[:, 1]]


def packed_tokens(lengths: list[int], row_tokens: int = ROW_TOKENS) -> int:
    """Tokens a packed batch of items of these lengths runs: rows x the widest row, as :func:`pack` packs them."""
    rows = _first_fit(lengths, row_tokens)
    return len(rows) * max(sum(lengths[i] for i in r) for r in rows)


def _first_fit(lengths: list[int], row_tokens: int) -> list[list[int]]:
    """Item indices per row: first fit, longest first, rows of max(row_tokens, the longest item) tokens."""
    capacity = max(row_tokens, max(lengths))
    rows: list[list[int]] = []
    used: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = next((r for r, u in enumerate(used) if u + lengths[i] <= capacity), None)
        if row is None:
            rows.append([])
            used.append(0)
            row = len(rows) - 1
        rows[row].append(i)
        used[row] += lengths[i]
    return rows
