"""The Bradley-Terry loss with soft targets, weights and TRL's reward centering, against hand values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from rewardserve.training.trainers import PreferenceCollator, bradley_terry_loss, soft_bradley_terry


def _logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_soft_loss_hand_value():
    # d = 1.5, p = 0.7: -(0.7 * log s(1.5) + 0.3 * log s(-1.5))
    expected = -(0.7 * _logsig(1.5) + 0.3 * _logsig(-1.5))
    assert expected == pytest.approx(0.6514, abs=1e-4)  # 0.7 * 0.20141 + 0.3 * 1.70141
    got = soft_bradley_terry(torch.tensor([1.5]), torch.tensor([0.7]))
    assert got.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("d", [-3.0, -0.2, 0.0, 0.7, 4.0])
def test_soft_loss_reduces_to_hard_at_p_0_and_1(d):
    diff = torch.tensor([d])
    assert torch.allclose(soft_bradley_terry(diff, torch.tensor([1.0])), -F.logsigmoid(diff))
    assert torch.allclose(soft_bradley_terry(diff, torch.tensor([0.0])), -F.logsigmoid(-diff))


def test_soft_loss_is_smallest_at_the_vote_log_odds():
    # The minimum over d of the soft loss is at d = log(p / (1 - p)): the model learns the vote share.
    p = 0.75
    ds = torch.linspace(-3, 3, 6001)
    best = ds[soft_bradley_terry(ds, torch.full_like(ds, p)).argmin()].item()
    assert best == pytest.approx(math.log(3), abs=1e-3)


def test_targets_weights_and_margin_in_the_batch_loss():
    r = torch.tensor([2.0, 0.5, 1.0, 3.0])
    idx, groups = torch.tensor([[0, 1], [3, 2]]), torch.tensor([0, 1])
    margin, target, weight = torch.tensor([0.5, 0.0]), torch.tensor([0.8, 1.0]), torch.tensor([0.6, 1.0])
    loss, _ = bradley_terry_loss(r, idx, groups, margin, target=target, weight=weight)
    pair0 = 0.6 * -(0.8 * _logsig(2.0 - 0.5 - 0.5) + 0.2 * _logsig(-(2.0 - 0.5 - 0.5)))
    pair1 = -_logsig(3.0 - 1.0)
    assert loss.item() == pytest.approx((pair0 + pair1) / 2, rel=1e-6)
    # No targets and no weights: exactly the hard loss.
    hard, _ = bradley_terry_loss(r, idx, groups, torch.zeros(2))
    ones, _ = bradley_terry_loss(r, idx, groups, torch.zeros(2), target=torch.ones(2), weight=torch.ones(2))
    assert torch.isclose(hard, ones)


def test_centering_matches_trl_for_pairs():
    # TRL RewardTrainer: loss += coef * mean((rewards_chosen + rewards_rejected) ** 2)
    chosen, rejected = torch.tensor([2.0, 1.0]), torch.tensor([0.0, 3.0])
    r = torch.stack([chosen, rejected], 1).reshape(-1)  # [c0, r0, c1, r1]
    idx, groups = torch.tensor([[0, 1], [2, 3]]), torch.tensor([0, 1])
    base, _ = bradley_terry_loss(r, idx, groups, torch.zeros(2))
    centred, _ = bradley_terry_loss(r, idx, groups, torch.zeros(2), center_coef=0.01,
                                    text_group=torch.tensor([0, 0, 1, 1]))
    trl = 0.01 * torch.mean((chosen + rejected) ** 2)  # 0.01 * (4 + 16) / 2 = 0.1
    assert torch.isclose(centred - base, trl) and torch.isclose(trl, torch.tensor(0.1))
    # The old term, coef * mean(r^2) = 0.01 * 14 / 4 = 0.035, is a different penalty.
    assert not torch.isclose(centred - base, 0.01 * r.pow(2).mean())


def test_centering_per_ranking_group_counts_each_text_once():
    # One prompt, three texts scored once (per_prompt mode): coef * (r0 + r1 + r2)^2, not per pair.
    r = torch.tensor([1.0, 2.0, -0.5])
    idx, groups = torch.tensor([[0, 1], [0, 2], [1, 2]]), torch.tensor([0, 0, 0])
    base, _ = bradley_terry_loss(r, idx, groups, torch.zeros(3))
    centred, _ = bradley_terry_loss(r, idx, groups, torch.zeros(3), center_coef=0.1,
                                    text_group=torch.tensor([0, 0, 0]))
    assert (centred - base).item() == pytest.approx(0.1 * 2.5**2)


class _Pad:
    def pad(self, rows, padding, return_tensors):
        width = max(len(r["input_ids"]) for r in rows)
        return {"input_ids": torch.tensor([r["input_ids"] + [0] * (width - len(r["input_ids"])) for r in rows])}


def test_collator_carries_targets_weights_and_text_groups():
    feats = [
        {"texts": [{"input_ids": [1]}, {"input_ids": [2, 3]}], "pairs": ((0, 1),), "margins": (0.0,),
         "targets": (0.7,), "weights": (1.0,)},
        {"texts": [{"input_ids": [4]}, {"input_ids": [5]}, {"input_ids": [6]}], "pairs": ((0, 1), (2, 1)),
         "margins": (0.0, 0.0), "targets": (1.0, 1.0), "weights": (0.5, 1.0)},
    ]
    batch = PreferenceCollator(_Pad())(feats)
    assert batch["pair_index"].tolist() == [[0, 1], [2, 3], [4, 3]]
    assert batch["text_group"].tolist() == [0, 0, 1, 1, 1]
    assert batch["target"].tolist() == pytest.approx([0.7, 1.0, 1.0])
    assert batch["weight"].tolist() == [1.0, 0.5, 1.0]
