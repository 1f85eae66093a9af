"""Parity texts: real texts of mixed lengths, from a data file or, when asked, a small built-in sample.

A data file is read with the training stage's loaders, so each text is exactly what the model
was trained on and the service will format (:mod:`rewardserve.formatting`, the bundle's
``reward.json`` templates). Every format ``rewardserve train`` reads is accepted (JSONL unless
said otherwise):

* preference pairs ``{"prompt", "chosen", "rejected"}``, whole HH dialogues ``{"chosen",
  "rejected"}``, conversations (``chosen``/``rejected``/``prompt`` as lists of ``{"role",
  "content"}``, rendered with the chat template) and K-way rankings ``{"prompt",
  "completions", "ranks"}``: texts 2k and 2k+1 are a (better, worse) pair, every differently
  ranked pair of a ranking in turn;
* classification CSV or JSONL: the text column (``text_column`` first, e.g. the one the model
  was trained on, then ``text``, ``tweet``); labels are not needed;
* ``{"prompt", "response"}`` records (what ``rewardserve score`` sends), and ``.txt`` files with
  one text per line.

Example::

    texts = load_texts(Path("data/hh/dev.jsonl"), spec, max_texts=64)
    texts.paired, texts.texts[:2]     # True, [chosen dialogue, rejected dialogue]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from rewardserve.bundle import RewardSpec
from rewardserve.formatting import format_pair

logger = logging.getLogger(__name__)

TEXT_COLUMNS = ("text", "tweet")
PREFERENCE_KEYS = ("chosen", "rejected", "completions", "ranks")

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


class NoTextsError(ValueError):
    """Neither a texts file nor the built-in sample was asked for."""


def builtin_texts(max_texts: int) -> ParityTexts:
    """Return the 16 built-in sample texts (unpaired; too few and too easy to trust a variant on)."""
    return ParityTexts(_SAMPLES[: _even(max_texts)], "built-in", paired=False)


def load_texts(path: Path | None, spec: RewardSpec, max_texts: int, builtin: bool = False,
               text_column: str | None = None) -> ParityTexts:
    """Load up to ``max_texts`` texts (whole pairs only) from ``path``, or the built-in sample if ``builtin``.

    Raises NoTextsError when ``path`` is None and ``builtin`` is False, ValueError (the training
    loaders' DataError, naming file and line) for bad records.
    """
    if path is None:
        if not builtin:
            raise NoTextsError("no parity texts: give a data file (any format `rewardserve train` reads) "
                               "or ask for the 16 built-in samples (builtin)")
        return builtin_texts(max_texts)
    path = Path(path)
    if path.suffix.lower() == ".txt":
        texts, paired = [line for line in path.read_text().splitlines() if line.strip()][:max_texts], False
    else:
        texts, paired = _from_records(path, spec, max_texts, text_column)
    texts = texts[: _even(len(texts))]
    if len(texts) < 2:
        raise ValueError(f"{path}: needs at least 2 non-empty texts for parity, found {len(texts)}")
    logger.info("parity texts: %d from %s%s", len(texts), path, " (chosen/rejected pairs)" if paired else "")
    return ParityTexts(texts, str(path), paired)


def _even(n: int) -> int:
    return n - n % 2


def _from_records(path: Path, spec: RewardSpec, max_texts: int, text_column: str | None) -> tuple[list[str], bool]:
    # The training stage's readers: the same JSONL/CSV rules and file:line errors (DataError is a ValueError).
    from rewardserve.training.data import read_records

    records = read_records(path)
    first = next(records, None)
    records.close()
    if first is None:
        raise ValueError(f"{path}: no records")
    if any(k in first[2] for k in PREFERENCE_KEYS):
        return _preference_texts(path, spec, max_texts), True
    columns = tuple(dict.fromkeys(c for c in (text_column, *TEXT_COLUMNS) if c))
    texts: list[str] = []
    for _, lineno, row in read_records(path):
        if len(texts) >= max_texts:
            break
        if "prompt" in row and "response" in row:
            texts.append(format_pair(spec.prompt_template, str(row["prompt"]), str(row["response"])))
            continue
        col = next((c for c in columns if c in row), None)
        if col is None:
            raise ValueError(f"{path}:{lineno}: needs 'chosen'/'rejected', 'completions'/'ranks', "
                             f"'prompt'/'response' or a text column {list(columns)}")
        if isinstance(row[col], str) and row[col].strip():
            texts.append(row[col])
    return texts, False


def _preference_texts(path: Path, spec: RewardSpec, max_texts: int) -> list[str]:
    """(better, worse) texts of every comparison, formatted as training formats them."""
    from rewardserve.training.data import TextFormatter, load_preferences

    groups, _ = load_preferences(path, TextFormatter(spec.prompt_template, spec.chat_template))
    texts: list[str] = []
    for group in groups:
        for better, worse in group.pairs:
            if len(texts) + 2 > max_texts:
                return texts
            texts += [group.texts[better], group.texts[worse]]
    return texts
