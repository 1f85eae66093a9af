"""Packed rows: items of a padded batch share rows, each seeing only itself, and come back in order."""

from __future__ import annotations

import numpy as np
from rewardserve.service.backends.packing import SEGMENT_STARTS, pack, packed_tokens, unpack
from rewardserve.service.domain import Encoded
from rewardserve.service.engine.encoding import pad_batch


def _batch(lengths, seed=0):
    rng = np.random.default_rng(seed)
    items = [Encoded(rng.integers(5, 900, n), np.full(n, i % 2), False) for i, n in enumerate(lengths)]
    return items, pad_batch(items, pad_id=0)


def test_items_share_rows_longest_first_and_each_sees_only_itself():
    items, padded = _batch([5, 3, 7, 2])
    packed, where = pack(padded, row_tokens=8)
    # First fit, longest first, rows of 8 tokens: [7], [5, 3], [2] (2 fits beside neither: 9 and 10 > 8).
    assert packed["input_ids"].shape == (3, 8) and packed["attention_mask"].shape == (3, 8, 8)
    for i, item in enumerate(items):
        row, seg = where[i]
        start, n = packed[SEGMENT_STARTS][row, seg], item.num_tokens
        np.testing.assert_array_equal(packed["input_ids"][row, start : start + n], item.ids)
        np.testing.assert_array_equal(packed["token_type_ids"][row, start : start + n], item.type_ids)
        np.testing.assert_array_equal(packed["position_ids"][row, start : start + n], np.arange(n))  # restart
        seen = packed["attention_mask"][row, start]  # what the item's first token attends to: itself only
        assert seen[start : start + n].all() and seen.sum() == n
    assert packed_tokens([5, 3, 7, 2], row_tokens=8) == 3 * 8


def test_unpacked_logits_come_back_in_the_batchs_order():
    items, padded = _batch([12, 40, 3, 33, 3, 64, 1, 20], seed=1)
    packed, where = pack(padded)
    mask, ids, starts = packed["attention_mask"], packed["input_ids"], packed[SEGMENT_STARTS]
    # A stand-in packed model: each segment's "logit" is the sum of the ids its first token attends to.
    logits = np.stack([[[(ids[r] * mask[r, s]).sum()] for s in starts[r]] for r in range(len(ids))])
    np.testing.assert_array_equal(unpack(logits, where)[:, 0], [int(it.ids.sum()) for it in items])
    rows = packed["input_ids"].shape[0]
    assert rows < len(items) and packed_tokens([it.num_tokens for it in items]) == rows * ids.shape[1]


def test_an_item_longer_than_a_row_gets_a_row_of_its_own_length():
    _, padded = _batch([200, 10, 10])
    packed, where = pack(padded, row_tokens=128)
    assert packed["input_ids"].shape == (2, 200)  # the rows are as wide as the longest item; 10 + 10 share one
    assert where.tolist() == [[0, 0], [1, 0], [1, 1]]
