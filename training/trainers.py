"""Hugging Face ``Trainer`` subclasses for Bradley-Terry and classifier reward models.

Built on ``Trainer`` rather than a hand-written loop so checkpoints, resume, gradient
accumulation, bf16 and multi-GPU launch (``accelerate launch``/``torchrun``) work unchanged.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from rewardserve.training.data import LabelledText, PreferenceGroup
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase, Trainer


class TokenizedGroups(Dataset):
    """Preference groups with their texts tokenized once, up front."""

    def __init__(self, groups: list[PreferenceGroup], tokenizer: PreTrainedTokenizerBase, max_length: int):
        texts = [t for g in groups for t in g.texts]
        enc = tokenizer(texts, truncation=True, max_length=max_length)
        rows = [{k: enc[k][i] for k in enc} for i in range(len(texts))]
        self.items: list[dict[str, Any]] = []
        # Longest text per group: what the group costs once padded (for length grouping).
        self.lengths: list[int] = []
        pos = 0
        for g in groups:
            group_rows = rows[pos : pos + len(g.texts)]
            self.items.append({"texts": group_rows, "pairs": g.pairs, "margins": g.margins,
                               "targets": g.pair_targets(), "weights": g.pair_weights()})
            self.lengths.append(max(len(r["input_ids"]) for r in group_rows))
            pos += len(g.texts)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


@dataclass
class PreferenceCollator:
    """Pads every text of every group into ONE batch, so a step is one forward pass.

    Returns the tokenizer's tensors plus ``pair_index`` [P, 2] (better, worse) rows into the
    batch, ``pair_group`` [P] (which group each pair came from), ``margin``, ``target`` and
    ``weight`` [P], and ``text_group`` [T] (which group each text came from, for centering).
    """

    tokenizer: PreTrainedTokenizerBase

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows, text_group, pair_index, pair_group = [], [], [], []
        columns: dict[str, list[float]] = {"margin": [], "target": [], "weight": []}
        for gi, f in enumerate(features):
            base = len(rows)
            rows.extend(f["texts"])
            text_group.extend([gi] * len(f["texts"]))
            for (i, j), m, p, w in zip(f["pairs"], f["margins"], f["targets"], f["weights"], strict=True):
                pair_index.append((base + i, base + j))
                pair_group.append(gi)
                for name, value in (("margin", m), ("target", p), ("weight", w)):
                    columns[name].append(value)
        batch = self.tokenizer.pad(rows, padding=True, return_tensors="pt")
        batch["pair_index"] = torch.tensor(pair_index, dtype=torch.long)
        batch["pair_group"] = torch.tensor(pair_group, dtype=torch.long)
        batch["text_group"] = torch.tensor(text_group, dtype=torch.long)
        for name, values in columns.items():
            batch[name] = torch.tensor(values, dtype=torch.float)
        return batch


def soft_bradley_terry(diff: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pair ``-(p log sigma(d) + (1 - p) log sigma(-d))``: the hard loss ``-log sigma(d)`` at p = 1."""
    return -(target * F.logsigmoid(diff) + (1 - target) * F.logsigmoid(-diff))


def bradley_terry_loss(
    rewards: torch.Tensor,
    pair_index: torch.Tensor,
    pair_group: torch.Tensor,
    margin: torch.Tensor,
    center_coef: float = 0.0,
    target: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    text_group: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Bradley-Terry loss on d = r_better - r_worse - margin, averaged per group, then over groups.

    Per pair: ``weight * -(p log sigma(d) + (1 - p) log sigma(-d))`` with p = ``target`` (1 by
    default: the hard loss ``-log sigma(d)``). With one pair per group this is the plain mean
    (TRL's RewardTrainer); with a ranking per group it is InstructGPT's loss, averaged per
    prompt so long rankings do not dominate. Weights scale a pair's loss; the averages still
    divide by the number of pairs, so a weakly agreed pair counts for less in absolute terms.

    Centering is TRL's ``center_rewards_coefficient``: ``coef * mean over groups of (sum of the
    group's rewards)^2``; for pairs that is TRL's ``mean((r_chosen + r_rejected)^2)``. It pulls
    each group's rewards towards mean zero without touching the differences the loss grows.
    ``text_group`` says which group each reward belongs to (default: the pairs' groups).
    """
    diff = rewards[pair_index[:, 0]] - rewards[pair_index[:, 1]]
    d = diff - margin
    per_pair = -F.logsigmoid(d) if target is None else soft_bradley_terry(d, target)
    if weight is not None:
        per_pair = per_pair * weight
    n_groups = int(pair_group.max().item()) + 1
    sums = torch.zeros(n_groups, dtype=per_pair.dtype, device=per_pair.device).index_add(0, pair_group, per_pair)
    counts = torch.bincount(pair_group, minlength=n_groups).clamp(min=1).to(per_pair.dtype)
    loss = (sums / counts).mean()
    if center_coef > 0:
        if text_group is None:
            text_group = _groups_from_pairs(pair_index, pair_group, len(rewards))
        group_sums = torch.zeros(n_groups, dtype=rewards.dtype, device=rewards.device).index_add(0, text_group, rewards)
        loss = loss + center_coef * group_sums.pow(2).mean()
    stats = {"accuracy": (diff > 0).float().mean().detach(), "margin": diff.mean().detach()}
    return loss, stats


def _groups_from_pairs(pair_index: torch.Tensor, pair_group: torch.Tensor, n: int) -> torch.Tensor:
    """Each text's group, read off the pairs it appears in."""
    out = torch.zeros(n, dtype=torch.long, device=pair_index.device)
    out[pair_index[:, 0]] = pair_group
    out[pair_index[:, 1]] = pair_group
    return out


class _StatsLoggingMixin:
    """Averages per-step training statistics over each logging window (like TRL).

    Also groups batches by length when ``group_by_length`` is set, from the datasets' own
    ``lengths`` (Trainer would look for a top-level ``input_ids`` the groups do not have).
    Padding is most of the cost on CPU, and dialogues vary from 20 to 500+ tokens.
    """

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.group_by_length and hasattr(dataset, "lengths"):
            from transformers.trainer_pt_utils import LengthGroupedSampler

            batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
            return LengthGroupedSampler(batch, lengths=dataset.lengths)
        return super()._get_train_sampler(train_dataset) if train_dataset is not None else super()._get_train_sampler()

    def _record(self, stats: dict[str, torch.Tensor]) -> None:
        if not hasattr(self, "_window"):
            self._window = defaultdict(list)
        for k, v in stats.items():
            self._window[k].append(float(v))

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:  # noqa: D401
        window = getattr(self, "_window", None)
        if window and "loss" in logs:
            for k, vs in window.items():
                logs[k] = round(sum(vs) / len(vs), 4)
            window.clear()
        super().log(logs, *args, **kwargs)


class PairwiseRewardTrainer(_StatsLoggingMixin, Trainer):
    """Trains a one-logit model with the Bradley-Terry loss over preference groups."""

    def __init__(self, *args: Any, center_rewards_coefficient: float = 0.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.center_rewards_coefficient = center_rewards_coefficient

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        pair_index = inputs.pop("pair_index")
        pair_group = inputs.pop("pair_group")
        margin, target, weight = inputs.pop("margin"), inputs.pop("target"), inputs.pop("weight")
        text_group = inputs.pop("text_group")
        rewards = model(**inputs).logits.squeeze(-1)
        loss, stats = bradley_terry_loss(rewards, pair_index, pair_group, margin, self.center_rewards_coefficient,
                                         target=target, weight=weight, text_group=text_group)
        if model.training:
            self._record(stats)
        return (loss, {"rewards": rewards}) if return_outputs else loss


class TokenizedTexts(Dataset):
    """Labelled texts tokenized once; with ``soft`` each item also carries its vote distribution."""

    def __init__(self, rows: list[LabelledText], tokenizer: PreTrainedTokenizerBase, max_length: int,
                 soft: bool = False):
        enc = tokenizer([r.text for r in rows], truncation=True, max_length=max_length)
        self.items = [{**{k: enc[k][i] for k in enc}, "labels": r.label} for i, r in enumerate(rows)]
        if soft:
            for item, r in zip(self.items, rows, strict=True):
                item["soft_labels"] = list(r.soft)
        self.lengths = [len(x["input_ids"]) for x in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


class ClassifierRewardTrainer(_StatsLoggingMixin, Trainer):
    """Cross-entropy sequence classifier with optional class weights and label smoothing.

    Batches with ``soft_labels`` [B, K] (the vote distribution) train against it instead of the
    majority ``labels``; accuracy is still logged against the majority label.
    """

    def __init__(self, *args: Any, class_weights: torch.Tensor | None = None, label_smoothing: float = 0.0,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.class_weights = class_weights
        self.label_smoothing = label_smoothing

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        soft = inputs.pop("soft_labels", None)
        logits = model(**inputs).logits
        weight = self.class_weights.to(logits.device) if self.class_weights is not None else None
        target = labels if soft is None else soft.to(logits.dtype)
        loss = F.cross_entropy(logits, target, weight=weight, label_smoothing=self.label_smoothing)
        if model.training:
            self._record({"accuracy": (logits.argmax(-1) == labels).float().mean().detach()})
        return (loss, {"logits": logits}) if return_outputs else loss
