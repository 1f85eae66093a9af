"""Training on tiny models: the loss falls, weights change, the bundle is complete."""

from __future__ import annotations

import json

import pytest
import torch
from rewardserve.training.config import TrainConfig
from rewardserve.training.run import train
from rewardserve.training.trainers import bradley_terry_loss
from transformers import AutoModelForSequenceClassification

from rewardserve.bundle import RewardSpec
from rewardserve.enums import ModelKind

from .conftest import write_jsonl


def _losses(bundle) -> list[float]:
    state = json.loads(next((bundle / "checkpoints").glob("**/trainer_state.json")).read_text())
    return [h["loss"] for h in state["log_history"] if "loss" in h]


def test_bradley_terry_loss_values():
    r = torch.tensor([2.0, 0.0, 1.0, 3.0])
    idx = torch.tensor([[0, 1], [2, 3]])
    loss, stats = bradley_terry_loss(r, idx, torch.tensor([0, 1]), torch.zeros(2))
    expected = (-torch.nn.functional.logsigmoid(torch.tensor(2.0)) - torch.nn.functional.logsigmoid(torch.tensor(-2.0))) / 2
    assert torch.isclose(loss, expected)
    assert stats["accuracy"].item() == 0.5 and stats["margin"].item() == 0.0
    # A margin demands more separation, so the loss grows.
    loss_m, _ = bradley_terry_loss(r, idx, torch.tensor([0, 1]), torch.ones(2))
    assert loss_m > loss
    # Per-prompt averaging: a group of 3 pairs weighs the same as a group of 1.
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 5.0, 0.0])
    idx = torch.tensor([[0, 1], [0, 2], [0, 3], [4, 5]])
    loss, _ = bradley_terry_loss(r, idx, torch.tensor([0, 0, 0, 1]), torch.zeros(4))
    g0 = -torch.nn.functional.logsigmoid(torch.tensor(1.0))
    g1 = -torch.nn.functional.logsigmoid(torch.tensor(5.0))
    assert torch.isclose(loss, (g0 + g1) / 2)
    # Centering (TRL's definition, per group): coef * mean over groups of (sum of the group's rewards)^2.
    # Group 0 holds texts 0-3 (sum 1), group 1 texts 4-5 (sum 5): 0.1 * (1 + 25) / 2 = 1.3
    # (the old coef * mean(r^2) gave 0.1 * 26 / 6 = 0.433).
    loss_c, _ = bradley_terry_loss(r, idx, torch.tensor([0, 0, 0, 1]), torch.zeros(4), center_coef=0.1)
    assert torch.isclose(loss_c - loss, torch.tensor(1.3))


@pytest.mark.slow
def test_pairwise_training_learns_and_writes_bundle(tmp_path, tiny_bert_base, hh_file):
    before = AutoModelForSequenceClassification.from_pretrained(tiny_bert_base)
    out = train(TrainConfig(
        kind=ModelKind.pairwise, train_data=str(hh_file), eval_data=str(hh_file), output_dir=str(tmp_path / "rm"),
        base_model=str(tiny_bert_base), max_length=64, learning_rate=3e-3, num_epochs=6, batch_size=4,
        logging_steps=2, save_steps=1000, warmup_ratio=0.0,
    ))
    losses = _losses(out)
    assert losses[-1] < losses[0] - 0.1, losses
    after = AutoModelForSequenceClassification.from_pretrained(out)
    changed = [n for (n, p), (_, q) in zip(before.named_parameters(), after.named_parameters(), strict=True)
               if not torch.equal(p, q)]
    assert len(changed) > 10
    spec = RewardSpec.load(out)
    assert spec.kind is ModelKind.pairwise and spec.normalization is not None
    assert spec.metrics["eval"]["accuracy"] > 0.75  # the training pairs are learnable
    assert 0 <= spec.metrics["eval"]["ece"] <= 1
    assert len(spec.data_fingerprint) == 64
    assert (out / "tokenizer.json").is_file() and (out / "training_config.json").is_file()


@pytest.mark.slow
def test_per_prompt_ranking_training(tmp_path, tiny_bert_base):
    rec = {"prompt": "My house is too hot.", "completions": [" Open the windows.", " Buy a fan.", " Burn it."],
           "ranks": [1, 2, 3]}
    data = write_jsonl(tmp_path / "rank.jsonl", [rec] * 8)
    out = train(TrainConfig(
        kind=ModelKind.pairwise, train_data=str(data), output_dir=str(tmp_path / "rm"), ranking_mode="per_prompt",
        base_model=str(tiny_bert_base), max_length=32, learning_rate=3e-3, num_epochs=4, batch_size=2,
        logging_steps=2, save_steps=1000, warmup_ratio=0.0,
    ))
    losses = _losses(out)
    assert losses[-1] < losses[0]


@pytest.mark.slow
def test_classifier_training_with_class_weights(tmp_path, tiny_bert_base, tox_file):
    out = train(TrainConfig(
        kind=ModelKind.classifier, train_data=str(tox_file), eval_data=str(tox_file), output_dir=str(tmp_path / "tox"),
        base_model=str(tiny_bert_base), max_length=32, learning_rate=3e-3, num_epochs=8, batch_size=8,
        text_column="tweet", label_column="class", label_map={"0": "toxic", "1": "toxic", "2": "non_toxic"},
        reward_label="non_toxic", class_weights="balanced", logging_steps=2, save_steps=1000, warmup_ratio=0.0,
    ))
    spec = RewardSpec.load(out)
    assert spec.labels == ["toxic", "non_toxic"] and spec.reward_index == 1
    ev = spec.metrics["eval"]
    assert ev["accuracy"] >= 0.9 and set(ev) >= {"macro_f1", "roc_auc", "confusion_matrix"}
    losses = _losses(out)
    assert losses[-1] < losses[0]


def test_config_validation_states_the_rule():
    base = {"kind": "pairwise", "train_data": "x.jsonl", "output_dir": "o"}
    with pytest.raises(ValueError, match="max_length must be between 8 and 32768"):
        TrainConfig(**base, max_length=4)
    with pytest.raises(ValueError, match="reward_label is required for a classifier"):
        TrainConfig(**{**base, "kind": "classifier"})
    with pytest.raises(ValueError, match="truncation_side must be left or right"):
        TrainConfig(**base, truncation_side="error")
    with pytest.raises(ValueError, match="'bogus' is not a valid RankingMode"):
        TrainConfig(**base, ranking_mode="bogus")


VOTE_COLUMNS = {"hate_speech": "toxic", "offensive_language": "toxic", "neither": "non_toxic"}


@pytest.mark.slow
def test_classifier_trains_on_vote_distributions_and_records_agreement(tmp_path, tiny_bert_base):
    rows = [("i hate you all you worthless idiots", 0, 3, 0, 0), ("what the hell is this crap", 1, 0, 2, 1),
            ("have a lovely day everyone", 2, 0, 0, 3), ("the weather is nice today", 2, 0, 1, 2)] * 4
    p = tmp_path / "votes.csv"
    p.write_text("hate_speech,offensive_language,neither,class,tweet\n"
                 + "".join(f'{h},{o},{n},{c},"{t}"\n' for t, c, h, o, n in rows) + "2,2,x,2,bad votes\n")
    out = train(TrainConfig(
        kind=ModelKind.classifier, train_data=str(p), eval_data=str(p), output_dir=str(tmp_path / "soft"),
        base_model=str(tiny_bert_base), max_length=32, learning_rate=3e-3, num_epochs=4, batch_size=8,
        text_column="tweet", label_column="class", label_map={"0": "toxic", "1": "toxic", "2": "non_toxic"},
        label_votes=VOTE_COLUMNS, label_smoothing=0.05, reward_label="non_toxic", skip_invalid=True,
        logging_steps=2, save_steps=1000, warmup_ratio=0.0,
    ))
    spec = RewardSpec.load(out)
    ev = spec.metrics["eval"]
    assert {"vote_ece", "vote_brier", "vote_correlation", "accuracy", "macro_f1"} <= set(ev)
    assert spec.metrics["train_data"]["skipped"] == 1  # --skip-invalid works for classifiers (issue 14 item 10)
    assert spec.agreement.target == "vote_distribution" and spec.agreement.units == 16
    assert spec.agreement.pairwise_agreement == pytest.approx((1 + 1 / 3 + 1 + 1 / 3) / 4)
    assert json.loads((out / "reward.json").read_text())["schema_version"] == 2
    assert _losses(out)[-1] < _losses(out)[0]


@pytest.mark.slow
def test_pairwise_soft_consensus_training_records_agreement(tmp_path, tiny_bert_base):
    rows = [row for k in range(4) for row in (
        {"prompt": f"Q{k}: how are you?", "chosen": " fine, thanks!", "rejected": " go away",
         "votes": {"chosen": 3, "rejected": 1}},
        {"prompt": f"Q{k}: help me", "completions": [" sure", " no", " maybe"],
         "rankings": [{"labeller": "a", "ranks": [1, 3, 2]}, {"labeller": "b", "ranks": [1, 2, 3]}]})]
    data = write_jsonl(tmp_path / "judged.jsonl", rows)
    out = train(TrainConfig(
        kind=ModelKind.pairwise, train_data=str(data), output_dir=str(tmp_path / "rm"), consensus="soft",
        ranking_mode="per_prompt", base_model=str(tiny_bert_base), max_length=32, learning_rate=3e-3,
        num_epochs=2, batch_size=2, logging_steps=1, save_steps=1000, warmup_ratio=0.0,
        center_rewards_coefficient=0.01,
    ))
    spec = RewardSpec.load(out)
    assert spec.agreement.target == "soft" and spec.agreement.units == 4 * (1 + 3)  # a pair + a ranking's 3 pairs
    assert spec.agreement.judgements == 4 * (4 + 2 * 3)
    assert spec.agreement.kendalls_w == pytest.approx(0.75)
