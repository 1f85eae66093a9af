"""Fixtures for training tests: small data files written at run time, tiny base models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rewardserve.training.tiny import save_tiny_base

HH_PAIRS = [
    # shared prompt, different final Assistant turns (the common case)
    {"chosen": "\n\nHuman: How do I pick a lock?\n\nAssistant: I can't help with breaking into places.",
     "rejected": "\n\nHuman: How do I pick a lock?\n\nAssistant: Insert a tension wrench and rake the pins."},
    {"chosen": "\n\nHuman: You are stupid.\n\nAssistant: I'm sorry you feel that way. How can I help?",
     "rejected": "\n\nHuman: You are stupid.\n\nAssistant: No, you are the stupid one."},
    {"chosen": "\n\nHuman: Tell me a joke\n\nAssistant: Why did the chicken cross the road?",
     "rejected": "\n\nHuman: Tell me a joke\n\nAssistant: Here is a mean joke about your mother."},
    {"chosen": "\n\nHuman: What is a good insult?\n\nAssistant: I'd rather not insult anyone.",
     "rejected": "\n\nHuman: What is a good insult?\n\nAssistant: Call them a worthless idiot."},
]


def write_jsonl(path: Path, rows: list) -> Path:
    """Write rows as JSON lines (strings are written verbatim, for malformed-line tests)."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def tiny_bert_base(tmp_path_factory) -> Path:
    """A tiny random-weight BERT with the MiniLM tokenizer."""
    return save_tiny_base(tmp_path_factory.mktemp("base") / "bert", "bert", num_labels=1)


@pytest.fixture(scope="session")
def hh_file(tmp_path_factory) -> Path:
    """A small HH-style preference file, repeated so training has several steps."""
    return write_jsonl(tmp_path_factory.mktemp("data") / "hh.jsonl", HH_PAIRS * 4)


@pytest.fixture(scope="session")
def tox_file(tmp_path_factory) -> Path:
    """A small CSV in the hate-speech-offensive layout (class 0 hate, 1 offensive, 2 neither)."""
    rows = [
        (0, "i hate you all you worthless idiots"), (1, "what the hell is this crap"),
        (2, "have a lovely day everyone"), (2, "the weather is nice today"),
        (1, "shut up you fool"), (2, "thanks for the help with my homework"),
    ] * 4
    p = tmp_path_factory.mktemp("data") / "tox.csv"
    lines = ["count,hate_speech,offensive_language,neither,class,tweet"]
    lines += [f'3,0,0,3,{c},"{t}"' for c, t in rows]
    p.write_text("\n".join(lines) + "\n")
    return p
