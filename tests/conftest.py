"""Shared test settings: where the external data lies, and offline mode."""

from __future__ import annotations

import os
from pathlib import Path

# Tests never reach a model hub: everything is built locally or shipped in a package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout (read-only, never copied into the project).
SHARED_DATA = Path(os.environ.get("REWARDSERVE_DATA", REPO.parent / "shared" / "data"))
