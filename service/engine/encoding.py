"""Fast-tokenizer wrapper: batch encoding with per-call truncation and no per-item padding.

Padding happens per batch (:func:`pad_batch`, called when a batch runs), so each item keeps only
its own tokens and the batcher can group items by length. ``encode_batch_fast`` of the ``tokenizers`` library runs
in Rust without the GIL, so calling it from a worker thread keeps the event loop free.

A text much longer than ``max_length`` tokens is tokenized only near the end it keeps: a window
of :data:`WINDOW_CHARS_PER_TOKEN` characters per kept token, cut at whitespace. For tokenizers whose
pre-tokenizer splits at whitespace (BERT, byte-level BPE, SentencePiece's metaspace; checked at
load on a probe text) the kept tokens are then exactly those of the whole text; a window that
yields too few tokens is doubled until it holds enough, or is the whole text. A 3,600-character
dialogue cut to 64 tokens costs a window's tokenization, not the whole text's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rewardserve.service.domain import Encoded
from tokenizers import Tokenizer

from rewardserve.bundle import BundleError
from rewardserve.enums import Truncation

# Characters of window per kept token. The kept end of HH dialogues has 4.3 characters per BERT
# token at the median, 5.4 at p99, 5.6 at most (2,000 dev texts cut to 62 tokens); a window that
# falls short is doubled until it holds enough tokens, or is the whole text.
WINDOW_CHARS_PER_TOKEN = 6
# Pre-tokenizers that split at whitespace: tokenizing a suffix (or prefix) cut at whitespace gives
# the same tokens as that part of the whole text.
LOCAL_PRE_TOKENIZERS = {"BertPreTokenizer", "Whitespace", "WhitespaceSplit", "ByteLevel", "Metaspace",
                        "Punctuation", "Digits"}
PROBE_TEXT = ("Human: Hi there! Can you help me with 3,141.59 things, naïvely? Ünïcödé, emoji 🙂 and CJK 漢字 too.\n\n"
              "Assistant: Sure - here's a list:\n  1. first\t(tab)\n  2. second... done.  ") * 12


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
        self.window_chars = self._budget * WINDOW_CHARS_PER_TOKEN if self._windows_are_exact() else 0

    def _windows_are_exact(self) -> bool:
        """Whether windowed tokenization gives the whole text's kept tokens (pre-tokenizer, then a probe)."""
        spec = json.loads(self._tok.to_str()).get("pre_tokenizer") or {}
        kinds = {p.get("type") for p in spec.get("pretokenizers", [spec])} if spec else {None}
        if not kinds <= LOCAL_PRE_TOKENIZERS:
            return False
        full = self._tok.encode(PROBE_TEXT, add_special_tokens=False).ids
        for side in Truncation.left, Truncation.right:
            ids = self._tok.encode(_window(PROBE_TEXT, len(PROBE_TEXT) // 3, side), add_special_tokens=False).ids
            if not ids or ids != (full[-len(ids):] if side is Truncation.left else full[: len(ids)]):
                return False
        return True

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
        windows = [self._windowed(t, truncation) for t in texts]
        # _fast: no character offsets, which nothing here reads, so less work per text.
        encodings = self._tok.encode_batch_fast(windows, add_special_tokens=False)
        out = []
        for i, enc in enumerate(encodings):
            window = windows[i]
            while window is not texts[i] and len(enc.ids) <= self._budget:  # too few tokens to decide: wider
                window = self._windowed(texts[i], truncation, 2 * len(window))
                enc = self._tok.encode(window, add_special_tokens=False)
            cut = len(enc.ids) > self._budget
            if cut:
                if truncation is Truncation.error:
                    raise TooLong(i, len(enc.ids) + self.max_length - self._budget, self.max_length)
                enc.truncate(self._budget, direction=truncation.value)
            enc = self._tok.post_process(enc)
            out.append(Encoded(np.asarray(enc.ids, np.int64), np.asarray(enc.type_ids, np.int64), cut))
        return out

    def _windowed(self, text: str, truncation: Truncation, chars: int = 0) -> str:
        """``text``, or the part near the end truncation keeps (``chars``, else window_chars, long) if shorter."""
        chars = chars or self.window_chars
        if not self.window_chars or len(text) <= chars or truncation is Truncation.error:
            return text  # error mode reports the whole text's token count
        return _window(text, chars, truncation)


def _window(text: str, chars: int, side: Truncation) -> str:
    """The last (left truncation) or first ``chars`` characters, widened to the nearest whitespace."""
    if side is Truncation.left:
        cut = len(text) - chars
        while cut > 0 and not text[cut].isspace():
            cut -= 1
        return text[cut:]
    cut = chars
    while cut < len(text) and not text[cut].isspace():
        cut += 1
    return text[:cut]


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
