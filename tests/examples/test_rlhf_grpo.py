"""examples/rlhf_grpo.py end to end: TRL's GRPOTrainer, rewards from a real in-process server."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from tests.service.conftest import ServerThread, make_config

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rlhf_grpo.py"
STEPS, PER_STEP = 8, 2 * 8  # prompts x generations: completions scored per step


def load_example():
    spec = importlib.util.spec_from_file_location("rlhf_grpo", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_grpo_raises_the_served_reward(tmp_path, word_toxicity_bundle):
    """The tiny policy learns to avoid the words the served classifier calls toxic.

    The reward (the non-toxic logit of tests/word_reward.py's classifier) is +2 for a completion
    without toxic words and falls with their share; a uniformly random policy writes one in
    about 60% of its 6-word completions. The run is seeded.
    """
    example = load_example()
    server = ServerThread(make_config({"toxicity": word_toxicity_bundle}, names=("toxicity",), metrics_port=None))
    try:
        history = example.main([
            "--address", server.target, "--tiny", "--reward-model", "toxicity", "--steps", str(STEPS),
            "--prompts-per-step", "2", "--num-generations", "8", "--max-completion-length", "6",
            "--learning-rate", "1e-2", "--seed", "0", "--show", "0", "--output-dir", str(tmp_path / "out"),
            "--history", str(tmp_path / "history.json")])
        requests = server.server.metrics.registry.get_sample_value(
            "rewardserve_requests_total", {"method": "Score", "model": "toxicity", "code": "OK"})
        items = server.server.metrics.registry.get_sample_value("rewardserve_items_total", {"model": "toxicity"})
    finally:
        server.stop()

    assert [r["step"] for r in history] == list(range(1, STEPS + 1))
    # every reward came over gRPC: one Score request per step, one item per completion
    assert (requests, items) == (STEPS, STEPS * PER_STEP)
    first, last = history[:3], history[-3:]
    gain = sum(r["reward"] for r in last) / 3 - sum(r["reward"] for r in first) / 3
    # standard error of the difference of two 3-step means, from each step's spread of rewards
    se = math.sqrt(sum(r["reward_std"] ** 2 / PER_STEP for r in first + last) / 9)
    assert gain > 0.5, history
    assert gain > 4 * se, (gain, se, history)  # not sampling noise
    assert json.loads((tmp_path / "history.json").read_text())["steps"] == history
