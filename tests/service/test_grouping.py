"""The batch grouping policy: the oldest item and its nearest neighbours in length, within every bound."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from rewardserve.service.engine.grouping import around_oldest


def group(lengths: list[int], max_items: int = 64, max_tokens: int = 10_000, floor: float = 0.0) -> list[int]:
    items = list(enumerate(lengths))  # (arrival order, tokens): identity survives equal lengths
    batch = around_oldest(items, lambda it: it[1], max_items=max_items, max_tokens=max_tokens,
                          min_padding_efficiency=floor)
    return [i for i, _ in batch]


def test_nothing_queued_is_an_empty_batch():
    assert group([]) == []


def test_the_nearest_lengths_join_the_oldest_first():
    # Oldest is 50 tokens; 48 and 53 are nearest, then 40; 200 would pad the batch four-fold.
    assert sorted(group([50, 200, 48, 53, 40, 10], max_items=4)) == [0, 2, 3, 4]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 256), min_size=1, max_size=80), st.integers(1, 64), st.integers(256, 4096),
       st.sampled_from([0.0, 0.5, 0.8, 0.95]))
def test_every_batch_holds_the_oldest_and_keeps_every_bound(lengths, max_items, max_tokens, floor):
    batch = group(lengths, max_items, max_tokens, floor)
    assert 0 in batch and len(set(batch)) == len(batch) <= max_items
    chosen = [lengths[i] for i in batch]
    if len(batch) > 1:  # the oldest alone always goes, whatever its length
        assert len(batch) * max(chosen) <= max_tokens
        assert sum(chosen) >= floor * len(batch) * max(chosen) - 1e-9
    left_out = [n for i, n in enumerate(lengths) if i not in batch]  # neighbours in length: no gaps
    assert not [n for n in left_out if min(chosen) < n < max(chosen)]
