"""Which queued items form the next batch: the oldest item and its nearest neighbours in length.

A pure function of the live queue, so the batcher's policy is tested without a loop or a runner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def around_oldest(live: Sequence[T], tokens: Callable[[T], int], *, max_items: int, max_tokens: int,
                  min_padding_efficiency: float) -> list[T]:
    """``live[0]`` (the oldest) and the items nearest it in length, sorted by length (none if ``live`` is empty).

    The batch grows one neighbour at a time, the nearer in length first (a shorter one on a tie,
    since it never widens the batch), while it holds at most ``max_items`` items and
    ``max_tokens`` padded tokens (items x longest) and real / padded tokens stay at least
    ``min_padding_efficiency``.
    """
    if not live:
        return []
    order = sorted(live, key=tokens)
    lo = hi = order.index(live[0])
    width = real = tokens(live[0])

    def fits(other: T | None) -> bool:
        if other is None:
            return False
        count, wide = hi - lo + 2, max(width, tokens(other))
        return count * wide <= max_tokens and real + tokens(other) >= min_padding_efficiency * count * wide

    while hi - lo + 1 < max_items:
        left = order[lo - 1] if lo > 0 else None
        right = order[hi + 1] if hi + 1 < len(order) else None
        fits_left, fits_right = fits(left), fits(right)
        if fits_left and (not fits_right or width - tokens(left) <= tokens(right) - width):
            lo, real = lo - 1, real + tokens(left)
        elif fits_right:
            hi, width, real = hi + 1, max(width, tokens(right)), real + tokens(right)
        else:
            break
    return order[lo : hi + 1]
