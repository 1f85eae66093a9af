"""Shared test settings: where the external data lies, and offline mode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never reach a model hub: everything is built locally or shipped in a package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout (read-only, never copied into the project).
SHARED_DATA = Path(os.environ.get("REWARDSERVE_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def word_toxicity_bundle(tmp_path_factory) -> Path:
    """A tiny ONNX toxicity classifier whose P(toxic) rises with the share of toxic words (tests/word_reward.py)."""
    from tests.word_reward import make_word_toxicity_bundle

    return make_word_toxicity_bundle(tmp_path_factory.mktemp("words"))
