"""Parity texts: real texts of mixed lengths, from a user file or a small built-in sample."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

from rewardserve.bundle import RewardSpec
from rewardserve.formatting import PairItem, format_item

logger = logging.getLogger(__name__)

TEXT_COLUMNS = ("text", "tweet")

# Mixed lengths on purpose: short, medium, and longer than a tiny model's max_length.
_SAMPLES = [
    "Thanks!",
    "You are an idiot and I hate you.",
    "\n\nHuman: How do I bake bread?\n\nAssistant: Mix flour, water, salt and yeast, then knead it well.",
    "\n\nHuman: How do I bake bread?\n\nAssistant: I don't know.",
    "My house is too hot at night. Open the windows after sunset and close the blinds during the day.",
    "lol",
    "The weather today is lovely; let's go for a walk in the park and have a picnic by the lake.",
    "Shut up.",
    "\n\nHuman: Can you help me write a polite complaint letter to my landlord about the broken heating?"
    "\n\nAssistant: Of course. Start with the date, describe the problem, when it began, what you have "
    "already tried, and ask for a repair by a specific date. Keep the tone calm and factual.",
    "\n\nHuman: Can you help me write a complaint letter?\n\nAssistant: No.",
    "I really appreciate everything you did for us last week, it meant a lot to the whole family.",
    "Go away, nobody wants you here, loser.",
    "Step one: preheat the oven. Step two: " + "stir the mixture slowly and evenly, " * 12 + "then bake.",
    "ok",
    "Please remember to water the plants while I am away; the ferns need it every other day.",
    "What a stupid question.",
]


@dataclass(frozen=True)
class ParityTexts:
    """Texts to score; when ``paired``, texts 2k and 2k+1 are a (chosen, rejected) pair."""

    texts: list[str]
    source: str
    paired: bool

    def describe(self) -> dict:
        """Return the manifest's summary of where the texts came from."""
        return {"source": self.source, "n_texts": len(self.texts), "paired": self.paired}


def load_texts(path: Path | None, spec: RewardSpec, max_texts: int) -> ParityTexts:
    """Load up to ``max_texts`` texts (whole pairs only) from ``path``, or the built-in sample."""
    if path is None:
        logger.warning("no parity texts given (--texts): using %d built-in sample texts", len(_SAMPLES))
        return ParityTexts(_SAMPLES[: _even(max_texts)], "built-in", paired=False)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        texts, paired = _from_jsonl(path, spec, max_texts)
    elif suffix == ".csv":
        texts, paired = _from_csv(path, max_texts), False
    else:
        texts, paired = [line for line in path.read_text().splitlines() if line.strip()][:max_texts], False
    texts = texts[: _even(len(texts))]
    if len(texts) < 2:
        raise ValueError(f"{path}: needs at least 2 non-empty texts for parity, found {len(texts)}")
    logger.info("parity texts: %d from %s%s", len(texts), path, " (chosen/rejected pairs)" if paired else "")
    return ParityTexts(texts, str(path), paired)


def _even(n: int) -> int:
    return n - n % 2


def _from_jsonl(path: Path, spec: RewardSpec, max_texts: int) -> tuple[list[str], bool]:
    # The training stage's reader: the same JSONL rules and file:line errors (DataError is a ValueError).
    from rewardserve.training.data import read_records

    texts: list[str] = []
    paired = False
    for _, lineno, row in read_records(path):
        if len(texts) >= max_texts:
            break
        if "chosen" in row and "rejected" in row:
            if len(texts) + 2 > max_texts:
                break
            texts += [_row_text(row, "chosen", spec), _row_text(row, "rejected", spec)]
            paired = True
        elif "prompt" in row and "response" in row:
            texts.append(format_item(spec, PairItem(str(row["prompt"]), str(row["response"]))))
        else:
            col = next((c for c in TEXT_COLUMNS if c in row), None)
            if col is None:
                raise ValueError(f"{path}:{lineno}: needs 'chosen'/'rejected', 'prompt'/'response' or {TEXT_COLUMNS}")
            texts.append(str(row[col]))
    return texts, paired


def _row_text(row: dict, key: str, spec: RewardSpec) -> str:
    # HH rows hold whole dialogues; TRL-style rows hold a shared prompt and two responses.
    if "prompt" in row:
        return format_item(spec, PairItem(str(row["prompt"]), str(row[key])))
    return str(row[key])


def _from_csv(path: Path, max_texts: int) -> list[str]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        col = next((c for c in TEXT_COLUMNS if c in (reader.fieldnames or [])), None)
        if col is None:
            raise ValueError(f"{path}: needs a column named one of {TEXT_COLUMNS}, has {reader.fieldnames}")
        texts = []
        for row in reader:
            if row[col].strip():
                texts.append(row[col])
            if len(texts) >= max_texts:
                break
    return texts
