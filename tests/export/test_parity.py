"""The parity gate: agreement alone passes a uniformly shifted or scaled variant; the size gates do not."""

from __future__ import annotations

import numpy as np
import pytest
from rewardserve.export.config import Tolerances
from rewardserve.export.parity import compare, gate

from rewardserve.enums import ModelKind, Precision

RNG = np.random.default_rng(0)
PAIRWISE = {"batch1": RNG.normal(size=(40, 1)).astype(np.float32)}
CLASSIFIER = {"batch1": RNG.normal(size=(40, 3)).astype(np.float32)}
ONLY_SIZE = Tolerances(int8_max_mean_reward_diff=0.03, int8_max_prob_diff=None)
ONLY_PROB = Tolerances(int8_max_mean_reward_diff=None, int8_max_prob_diff=0.07)


def _with(logits: dict, f) -> dict:
    return {k: f(v).astype(np.float32) for k, v in logits.items()}


@pytest.mark.parametrize(("kind", "logits"), [(ModelKind.pairwise, PAIRWISE), (ModelKind.classifier, CLASSIFIER)])
def test_shift_keeps_agreement_but_fails_mean_reward_gate(kind, logits):
    metrics = compare(logits, _with(logits, lambda x: x + 0.1), kind, reward_index=0)
    assert metrics["agreement"] == 1.0
    assert metrics["mean_abs_reward_diff"] == pytest.approx(0.1, abs=1e-6)
    # A shift moves no probability the gate looks at: softmax and sigma(r_a - r_b) are shift-invariant.
    assert metrics[metrics["prob_metric"]] < 1e-6
    assert gate(Precision.int8, metrics, ONLY_PROB) == ""
    assert gate(Precision.int8, metrics, Tolerances()) == "int8: mean_abs_reward_diff=0.1 exceeds tolerance 0.03"


@pytest.mark.parametrize(("kind", "logits", "prob_metric"), [(ModelKind.pairwise, PAIRWISE, "max_abs_pair_prob_diff"),
                                                             (ModelKind.classifier, CLASSIFIER, "max_abs_prob_diff")])
def test_scale_keeps_agreement_but_fails_probability_gate(kind, logits, prob_metric):
    metrics = compare(logits, _with(logits, lambda x: x * 1.5), kind, reward_index=0)
    assert metrics["agreement"] == 1.0 and metrics["prob_metric"] == prob_metric
    failure = gate(Precision.int8, metrics, ONLY_PROB)
    assert failure.startswith(f"int8: {prob_metric}=") and failure.endswith("exceeds tolerance 0.07")
    assert gate(Precision.int8, metrics, Tolerances(int8_max_mean_reward_diff=None, int8_max_prob_diff=None)) == ""


def test_pairwise_probability_is_bradley_terry_over_the_pairs():
    ref = {"batch1": np.array([[2.0], [0.0], [-1.0], [-1.5]], np.float32)}
    got = {"batch1": np.array([[2.0], [1.0], [-1.0], [-1.5]], np.float32)}  # pair 0's margin 2 -> 1
    metrics = compare(ref, got, ModelKind.pairwise, reward_index=0)

    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    assert metrics["max_abs_pair_prob_diff"] == pytest.approx(sigmoid(2.0) - sigmoid(1.0), abs=1e-6)
    assert metrics["mean_abs_reward_diff"] == pytest.approx(0.25)


def test_small_noise_passes_every_default_gate():
    noisy = _with(CLASSIFIER, lambda x: x + RNG.normal(scale=0.005, size=x.shape))
    assert gate(Precision.int8, compare(CLASSIFIER, noisy, ModelKind.classifier, 1), Tolerances()) == ""


def test_size_gates_are_validated_and_off_for_fp32_fp16_by_default():
    assert ONLY_SIZE.max_mean_reward_diff(Precision.int8) == 0.03 and Tolerances().max_prob_diff("int8") == 0.07
    assert Tolerances().max_prob_diff("fp16") is None and Tolerances().max_mean_reward_diff("fp32") is None
    with pytest.raises(ValueError, match="int8_max_prob_diff must be a finite number >= 0 or None"):
        Tolerances(int8_max_prob_diff=-1)
