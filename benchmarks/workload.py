"""The benchmark's texts: real data with its real length distribution, tokenized once.

Every system sees the same texts in the same order. Requests are built as protobuf
messages before any timing starts, so the load generator only sends.
"""

from __future__ import annotations

import csv
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rewardserve.service.domain import Encoded
from rewardserve.service.engine.encoding import TextEncoder

from rewardserve.bundle import RewardSpec
from rewardserve.v1 import reward_pb2 as pb

logger = logging.getLogger(__name__)

TEXT_COLUMNS = ("text", "tweet")
HH_DEV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hh-rlhf-harmless" / "dev.jsonl"


def read_texts(path: Path, max_texts: int) -> list[str]:
    """Texts of a .jsonl (chosen and rejected dialogues, text or tweet) or .csv (text/tweet) file."""
    texts: list[str] = []
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            col = next((c for c in TEXT_COLUMNS if c in (reader.fieldnames or [])), None)
            if col is None:
                raise ValueError(f"{path}: needs a column named one of {TEXT_COLUMNS}, has {reader.fieldnames}")
            texts = [row[col] for row in reader if row[col].strip()]
    else:
        with path.open() as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if "chosen" in row and "rejected" in row:  # HH: both dialogues of a pair are real traffic
                    texts += [str(row["chosen"]), str(row["rejected"])]
                else:
                    col = next((c for c in TEXT_COLUMNS if c in row), None)
                    if col is None:
                        raise ValueError(f"{path}:{lineno}: needs 'chosen'/'rejected' or one of {TEXT_COLUMNS}")
                    texts.append(str(row[col]))
    if not texts:
        raise ValueError(f"{path}: no texts")
    return texts[:max_texts]


@dataclass(frozen=True)
class Workload:
    """Texts, their tokenization by the served model, and ready-to-send requests.

    Example::

        w = Workload.load(Path("bundle-onnx"), Path("dev.jsonl"), max_texts=400, seed=0)
        reqs = w.requests(items_per_request=1)
    """

    texts: tuple[str, ...]
    encoded: tuple[Encoded, ...]
    source: str

    @classmethod
    def load(cls, onnx_bundle: Path, data: Path, max_texts: int, seed: int) -> Workload:
        """Read and shuffle texts; tokenize them as the server will (same truncation side)."""
        spec = RewardSpec.load(onnx_bundle)
        texts = read_texts(data, max_texts)
        random.Random(seed).shuffle(texts)  # mixed lengths in arrival order, as in real traffic
        encoder = TextEncoder.from_file(onnx_bundle / "tokenizer.json", spec.max_length)
        encoded = encoder.encode_batch(texts, spec.truncation_side)
        logger.info("workload: %d texts from %s, tokens mean %.0f, max %d", len(texts), data,
                    np.mean([e.num_tokens for e in encoded]), max(e.num_tokens for e in encoded))
        return cls(tuple(texts), tuple(encoded), str(data))

    @property
    def num_tokens(self) -> np.ndarray:
        """Real tokens of each text (after truncation, special tokens included)."""
        return np.array([e.num_tokens for e in self.encoded])

    def requests(self, items_per_request: int) -> list[tuple[pb.ScoreRequest, int, int]]:
        """(request, items, real tokens) for consecutive groups of texts, wrapping around."""
        n = len(self.texts)
        count = max(1, n // items_per_request) if items_per_request <= n else 1
        out = []
        for r in range(count):
            idx = [(r * items_per_request + i) % n for i in range(items_per_request)]
            msg = pb.ScoreRequest(items=[pb.Item(text=self.texts[i]) for i in idx])
            out.append((msg, len(idx), int(sum(self.encoded[i].num_tokens for i in idx))))
        return out

    def describe(self) -> dict:
        """Summary of the texts for the results file."""
        t = self.num_tokens
        return {"source": self.source, "n_texts": len(self.texts), "tokens_mean": float(t.mean()),
                "tokens_p50": float(np.percentile(t, 50)), "tokens_p90": float(np.percentile(t, 90)),
                "tokens_max": int(t.max()), "truncated_fraction": float(np.mean([e.truncated for e in self.encoded]))}
