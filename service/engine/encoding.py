"""Fast-tokenizer wrapper: batch encoding with per-call truncation and no per-item padding.

Padding happens per batch (:func:`pad_batch`, called when a batch runs), so each item keeps only
its own tokens and the batcher can group items by length. ``encode_batch`` of the ``tokenizers`` library runs in
Rust without the GIL, so calling it from a worker thread keeps the event loop free.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rewardserve.service.domain import Encoded
from tokenizers import Tokenizer

from rewardserve.bundle import BundleError
from rewardserve.enums import Truncation


class TooLong(ValueError):
    """An item exceeds max_length while truncation is ``error``."""

    def __init__(self, index: int, num_tokens: int, max_length: int):
        super().__init__(f"items[{index}]: {num_tokens} tokens, max_length is {max_length} (truncation=error)")
        self.index = index


class TextEncoder:
    """Tokenizes texts the way the model was trained, truncating as each request asks.

    Example::

        enc = TextEncoder.from_file("bundle/tokenizer.json", max_length=512)
        [e] = enc.encode_batch(["Human: hi\\n\\nAssistant: hello"], Truncation.left)
        e.num_tokens, e.truncated
    """

    def __init__(self, tokenizer: Tokenizer, max_length: int):
        # Truncation is applied per call, not set on the shared tokenizer: concurrent
        # requests may ask for different sides, and the tokenizer's settings are global.
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tok = tokenizer
        self.max_length = max_length
        self._budget = max_length - tokenizer.num_special_tokens_to_add(is_pair=False)
        if self._budget < 1:
            raise BundleError(f"max_length {max_length} leaves no room beside the special tokens")

    @classmethod
    def from_file(cls, path: str | Path, max_length: int) -> TextEncoder:
        """Load ``tokenizer.json``; raise BundleError naming the file if it is missing or corrupt."""
        path = Path(path)
        if not path.is_file():
            raise BundleError(f"{path}: not found (a fast tokenizer file is required)")
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:  # the Rust loader raises a bare Exception
            raise BundleError(f"{path}: cannot load tokenizer: {e}") from e
        return cls(tok, max_length)

    @property
    def max_token_id(self) -> int:
        """The largest id the tokenizer can produce (added tokens included)."""
        return max(self._tok.get_vocab(with_added_tokens=True).values())

    def encode_batch(self, texts: list[str], truncation: Truncation) -> list[Encoded]:
        """Encode texts; cut each to max_length from ``truncation``'s side, or raise TooLong."""
        # Same steps as the tokenizer's own truncation: cut the content to the budget left
        # by the special tokens, then add them, so results match training's tokenization.
        encodings = self._tok.encode_batch(texts, add_special_tokens=False)
        out = []
        for i, enc in enumerate(encodings):
            cut = len(enc.ids) > self._budget
            if cut:
                if truncation is Truncation.error:
                    raise TooLong(i, len(enc.ids) + self.max_length - self._budget, self.max_length)
                enc.truncate(self._budget, direction=truncation.value)
            enc = self._tok.post_process(enc)
            out.append(Encoded(np.asarray(enc.ids, np.int64), np.asarray(enc.type_ids, np.int64), cut))
        return out


def padded_length(longest: int, multiple: int = 0, max_length: int | None = None) -> int:
    """The length a batch is padded to: its longest, or the next bucket (a multiple, at most max_length)."""
    if multiple <= 1:
        return longest
    bucket = -(-longest // multiple) * multiple
    return max(longest, min(bucket, max_length)) if max_length else bucket


def buckets(multiple: int, max_length: int) -> list[int]:
    """Every length :func:`padded_length` can give: multiples of ``multiple`` below max_length, then max_length."""
    if multiple <= 1:
        return [max_length]
    return [*range(multiple, max_length, multiple), max_length]


def pad_batch(batch: Sequence[Encoded], pad_id: int, multiple: int = 0,
              max_length: int | None = None) -> dict[str, np.ndarray]:
    """Pad items on the right to the longest (or its bucket); return every input a transformer may take.

    With ``multiple`` (a backend's ``pad_to_multiple``), lengths round up to a multiple of it,
    capped at ``max_length``: the backend sees a bounded set of shapes (CUDA: no per-shape cost).
    """
    length = padded_length(max(e.num_tokens for e in batch), multiple, max_length)
    ids = np.full((len(batch), length), pad_id, np.int64)
    types = np.zeros((len(batch), length), np.int64)
    mask = np.zeros((len(batch), length), np.int64)
    for row, e in enumerate(batch):
        ids[row, : e.num_tokens] = e.ids
        types[row, : e.num_tokens] = e.type_ids
        mask[row, : e.num_tokens] = 1
    # Right padding: positions count real tokens only, as HF derives them from the mask.
    positions = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "position_ids": positions}
