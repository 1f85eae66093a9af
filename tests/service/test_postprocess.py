"""Logits -> probabilities and rewards."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from rewardserve.service.domain import Encoded
from rewardserve.service.engine.postprocess import batch_rows, rewards, to_scores

from rewardserve.activations import probabilities, sigmoid
from rewardserve.bundle import Normalization, RewardSpec
from rewardserve.enums import ModelKind

finite = st.floats(-1e4, 1e4, width=32)


@given(arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(2, 4)), elements=finite))
def test_softmax_is_a_distribution_even_for_extreme_logits(logits):
    p = probabilities(logits)
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(-1), 1.0)
    # the largest logit gets the largest probability (logits that differ by less than float
    # resolution, e.g. 0 and 1e-45, tie: compare values, not argmax indices)
    top = np.take_along_axis(p, logits.argmax(-1)[:, None], -1)[:, 0]
    assert np.allclose(top, p.max(-1))


def test_single_logit_uses_sigmoid():
    p = probabilities(np.array([[0.0], [2.0], [-1e4]], np.float32))
    assert np.allclose(p[:, 0], [0.5, 1 / (1 + np.exp(-2.0)), 0.0])
    assert sigmoid(0.0) == 0.5


def test_reward_index_and_normalisation():
    spec = RewardSpec(kind=ModelKind.classifier, id2label={0: "toxic", 1: "ok"}, reward_label="ok", max_length=8,
                      normalization=Normalization(1.0, 4.0))
    logits = np.array([[0.0, 3.0], [1.0, -5.0]], np.float32)
    assert np.allclose(rewards(logits, spec, normalize=False), [3.0, -5.0])
    assert np.allclose(rewards(logits, spec, normalize=True), [0.5, -1.5])
    enc = [Encoded(np.arange(n), np.zeros(n, np.int64), n == 8) for n in (3, 8)]
    s = to_scores(batch_rows(logits, spec), enc, spec, normalize=True)
    assert (s[0].num_tokens, s[1].truncated, s[1].reward) == (3, True, -1.5)
    assert to_scores(batch_rows(logits, spec), enc, spec, normalize=False)[1].reward == -5.0


@given(arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 4)), elements=finite), st.data())
def test_a_batch_row_equals_the_row_scored_alone(logits, data):
    """Post-processing runs per batch: an item's outputs must not depend on the batch it ran in."""
    labels = logits.shape[1]
    spec = RewardSpec(kind=ModelKind.classifier if labels > 1 else ModelKind.pairwise,
                      id2label={i: f"l{i}" for i in range(labels)}, reward_label=f"l{labels - 1}", max_length=8)
    i = data.draw(st.integers(0, len(logits) - 1))
    [alone] = batch_rows(logits[i : i + 1], spec)
    together = batch_rows(logits, spec)[i]
    assert together == alone
    assert together.logits == tuple(float(x) for x in logits[i])
    assert together.probabilities == tuple(float(p) for p in probabilities(logits[i : i + 1])[0])
    assert together.reward == float(logits[i, spec.reward_index])
