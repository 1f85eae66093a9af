"""The unit of preference training: a group of texts and the (better, worse) comparisons among them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PreferenceGroup:
    """Texts for one prompt and the comparisons among them.

    ``pairs`` holds (better, worse) indices into ``texts``; a plain preference pair is a group
    of two texts with the single comparison (0, 1). Rankings keep all K completions of a prompt
    in one group, so each completion is scored once (InstructGPT-style training).

    Several labellers' judgements add, per pair, ``targets`` (the probability p that the first
    text is better: 1 for a hard label, the vote share for soft consensus) and ``weights``
    (the pair's weight in the loss). Empty means 1 for every pair.
    """

    texts: tuple[str, ...]
    pairs: tuple[tuple[int, int], ...]
    margins: tuple[float, ...]
    targets: tuple[float, ...] = ()
    weights: tuple[float, ...] = ()

    def pair_targets(self) -> tuple[float, ...]:
        """p per pair (1.0 where no soft target was given)."""
        return self.targets or (1.0,) * len(self.pairs)

    def pair_weights(self) -> tuple[float, ...]:
        """Loss weight per pair (1.0 where none was given)."""
        return self.weights or (1.0,) * len(self.pairs)


def flatten_pairs(groups: list[PreferenceGroup]) -> list[PreferenceGroup]:
    """Split groups into one group per comparison (standard pairwise training)."""
    out = []
    for g in groups:
        for (i, j), m, p, w in zip(g.pairs, g.margins, g.pair_targets(), g.pair_weights(), strict=True):
            out.append(PreferenceGroup((g.texts[i], g.texts[j]), ((0, 1),), (m,), (p,), (w,)))
    return out


