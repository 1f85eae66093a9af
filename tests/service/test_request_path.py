"""A real Score call passes through exactly the modules README "Architecture" lists, in order of layer.

The server runs in threads started under ``threading.setprofile``: every Python function entered
(or coroutine resumed) while the call is in flight is recorded by its module. Client-side code
runs in this test's thread and is left out.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from rewardserve.service.client import RewardClient

from .conftest import ServerThread, make_config

README = Path(__file__).resolve().parents[2] / "README.md"
ROOT_MODULES = {"domain", "errors", "config", "metrics", "recipes", "credential_files"}
MAX_MODULES = 9


def readme_path() -> list[str]:
    """The modules between the README's ``score-path`` markers, in order."""
    text = README.read_text()
    block = text.split("<!-- score-path -->")[1].split("<!-- /score-path -->")[0]
    return re.findall(r"`(rewardserve\.service\.[a-z_.]+)`", block)


def _layer_module(name: str) -> bool:
    parts = name.split(".")
    return parts[:2] == ["rewardserve", "service"] and len(parts) > 3  # in a folder, not the root


def test_score_passes_through_the_readme_modules(bundles):
    main = threading.get_ident()
    seen: list[str] = []
    recording = threading.Event()

    def profile(frame, event, arg):
        if event == "call" and recording.is_set() and threading.get_ident() != main:
            name = frame.f_globals.get("__name__", "")
            if name.startswith("rewardserve.service.") and name not in seen:
                seen.append(name)

    threading.setprofile(profile)  # for every thread started from now on (pools start lazily)
    try:
        server = ServerThread(make_config(bundles, names=("pairwise",)))
        try:
            with RewardClient(server.target) as client:
                client.score(["warm the channel"])
                recording.set()
                client.score([{"prompt": "Human: hi", "response": "Assistant: hello"}])
                recording.clear()
        finally:
            server.stop()
    finally:
        threading.setprofile(None)
    traced = [m for m in seen if _layer_module(m)]
    root = {m.rsplit(".", 1)[1] for m in seen if not _layer_module(m)}
    assert root <= ROOT_MODULES, root
    assert sorted(traced) == sorted(readme_path()), f"traced {traced}, README lists {readme_path()}"
    assert len(traced) <= MAX_MODULES, traced
