"""Run a training job end to end: data -> HF Trainer -> statistics -> metrics -> bundle."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
from rewardserve.training.config import RankingMode, TrainConfig
from rewardserve.training.data import (
    TextFormatter,
    fingerprint,
    flatten_pairs,
    load_classification,
    load_preferences,
)

from rewardserve.bundle import Normalization, RewardSpec
from rewardserve.enums import ModelKind, TextFormat

logger = logging.getLogger(__name__)


def train(config: TrainConfig) -> Path:
    """Train a reward model as ``config`` says and write its bundle; return the bundle path."""
    from transformers import set_seed

    set_seed(config.seed)
    random.seed(config.seed)
    if config.kind is ModelKind.pairwise:
        return _train_pairwise(config)
    return _train_classifier(config)


def _training_args(config: TrainConfig):
    import torch
    from transformers import TrainingArguments

    bf16 = config.bf16 == "yes" or (
        config.bf16 == "auto" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    )
    return TrainingArguments(
        output_dir=str(config.checkpoint_dir),
        learning_rate=config.learning_rate,
        num_train_epochs=config.num_epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum_steps,
        warmup_ratio=config.warmup_ratio,
        weight_decay=config.weight_decay,
        lr_scheduler_type="linear",
        logging_steps=config.logging_steps,
        save_strategy="steps" if config.save_steps > 0 else "no",
        save_steps=max(config.save_steps, 1),
        save_total_limit=2,
        eval_strategy="no",
        remove_unused_columns=False,  # the collators need their own columns
        bf16=bf16,
        seed=config.seed,
        data_seed=config.seed,
        report_to=config.report_to,
        dataloader_num_workers=0,
        group_by_length=not config.no_group_by_length,
        disable_tqdm=False,
        **config.extra,
    )


def _maybe_lora(model, config: TrainConfig):
    if config.lora_rank <= 0:
        return model
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(task_type=TaskType.SEQ_CLS, r=config.lora_rank, lora_alpha=config.lora_alpha,
                      lora_dropout=0.05, target_modules="all-linear")
    model = get_peft_model(model, lora)
    model.print_trainable_parameters()
    return model


def _unwrap(model):
    """Merge LoRA adapters so the bundle holds plain weights that export can read."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def _formatter(tokenizer, config: TrainConfig) -> TextFormatter:
    """The tokenizer's own chat template when it has one, else the HH-style fallback."""
    chat = getattr(tokenizer, "chat_template", None) or config.chat_template_fallback
    return TextFormatter(config.prompt_template, chat)


def _train_pairwise(config: TrainConfig) -> Path:
    from rewardserve.training.evaluate import evaluate_preferences, score_texts
    from rewardserve.training.models import load_model_and_tokenizer
    from rewardserve.training.trainers import PairwiseRewardTrainer, PreferenceCollator, TokenizedGroups

    id2label = {0: "reward"}
    model, tok = load_model_and_tokenizer(config.resolved_base_model, id2label, config.truncation_side.value)
    fmt = _formatter(tok, config)
    groups, report = load_preferences(config.train_data, fmt, config.skip_invalid, config.consensus)
    if config.ranking_mode is RankingMode.pairs:
        groups = flatten_pairs(groups)
    logger.info("training on %d groups, %d comparisons", len(groups), sum(len(g.pairs) for g in groups))
    trainer = PairwiseRewardTrainer(
        model=_maybe_lora(model, config),
        args=_training_args(config),
        train_dataset=TokenizedGroups(groups, tok, config.max_length),
        data_collator=PreferenceCollator(tok),
        center_rewards_coefficient=config.center_rewards_coefficient,
    )
    trainer.train(resume_from_checkpoint=config.resume or None)
    model = _unwrap(trainer.model)

    spec = RewardSpec(
        kind=ModelKind.pairwise, id2label=id2label, reward_label="reward", max_length=config.max_length,
        truncation_side=config.truncation_side, text_format=TextFormat.prompt_response,
        prompt_template=config.prompt_template, chat_template=fmt.chat_template,
        base_model=config.base_model or "sentence-transformers/all-MiniLM-L6-v2", model_type=model.config.model_type,
        data_fingerprint=fingerprint([config.train_data], config.to_dict()),
        agreement=_agreement(report, None, config),
    )
    texts = [t for g in groups for t in g.texts]
    rewards = score_texts(model, tok, _sample(texts, config), config.max_length, config.eval_batch_size)[:, 0]
    metrics: dict[str, Any] = {"train_loss": _final_loss(trainer), "train_data": report.to_dict()}
    if config.eval_data:
        eval_groups, _ = load_preferences(config.eval_data, fmt, config.skip_invalid, config.consensus)
        metrics["eval"] = evaluate_preferences(model, tok, spec, eval_groups, config.eval_batch_size)
        logger.info("eval: %s", json.dumps(metrics["eval"]))
    return _finish(model, tok, spec, rewards, metrics, config)


def _train_classifier(config: TrainConfig) -> Path:
    from rewardserve.training.data import parse_label_map, parse_label_votes
    from rewardserve.training.evaluate import score_texts
    from rewardserve.training.models import load_model_and_tokenizer
    from rewardserve.training.trainers import ClassifierRewardTrainer, TokenizedTexts
    from transformers import DataCollatorWithPadding

    label_map = parse_label_map(config.label_map)
    label_votes = parse_label_votes(config.label_votes)
    rows, names, report = load_classification(
        config.train_data, config.text_column, config.label_column, label_map,
        label_votes=label_votes, skip_invalid=config.skip_invalid)
    if config.reward_label not in names:
        raise ValueError(f"reward_label {config.reward_label!r} is not one of the classes {names}")
    id2label = dict(enumerate(names))
    model, tok = load_model_and_tokenizer(config.resolved_base_model, id2label, config.truncation_side.value)
    counts = np.bincount([r.label for r in rows], minlength=len(names))
    logger.info("class counts: %s; targets: %s", dict(zip(names, counts.tolist(), strict=True)),
                "vote distributions" if label_votes else "majority labels")
    trainer = ClassifierRewardTrainer(
        model=_maybe_lora(model, config),
        args=_training_args(config),
        train_dataset=TokenizedTexts(rows, tok, config.max_length, soft=bool(label_votes)),
        data_collator=DataCollatorWithPadding(tok),
        class_weights=_class_weights(config.class_weights, counts),
        label_smoothing=config.label_smoothing,
    )
    trainer.train(resume_from_checkpoint=config.resume or None)
    model = _unwrap(trainer.model)

    spec = RewardSpec(
        kind=ModelKind.classifier, id2label=id2label, reward_label=config.reward_label,
        max_length=config.max_length, truncation_side=config.truncation_side, text_format=TextFormat.plain,
        prompt_template=config.prompt_template, chat_template=_formatter(tok, config).chat_template,
        base_model=config.base_model or "sentence-transformers/all-MiniLM-L6-v2", model_type=model.config.model_type,
        data_fingerprint=fingerprint([config.train_data], config.to_dict()),
        agreement=_agreement(report, (rows, names) if label_votes else None, config),
    )
    logits = score_texts(model, tok, _sample([r.text for r in rows], config), config.max_length, config.eval_batch_size)
    metrics: dict[str, Any] = {"train_loss": _final_loss(trainer), "train_data": report.to_dict()}
    if config.eval_data:
        metrics["eval"] = _classifier_eval(model, tok, config, names, label_map, label_votes)
    return _finish(model, tok, spec, logits[:, spec.reward_index], metrics, config)


def _classifier_eval(model, tok, config: TrainConfig, names: list[str], label_map, label_votes) -> dict[str, Any]:
    """Metrics on eval_data: against the majority label, and against the votes when there are vote columns."""
    from rewardserve.training.evaluate import classifier_eval, score_texts

    ev, _, _ = load_classification(config.eval_data, config.text_column, config.label_column, label_map, names,
                                   label_votes=label_votes, skip_invalid=config.skip_invalid)
    logits = score_texts(model, tok, [r.text for r in ev], config.max_length, config.eval_batch_size)
    out = classifier_eval(logits, ev, names, config.reward_label)
    logger.info("eval: %s", json.dumps(out))
    return out


def _agreement(report, votes, config: TrainConfig):
    """The labellers' agreement for reward.json: class votes, several labellers' judgements, or None."""
    from rewardserve.training.data_stats import judgement_stats, summary_from_stats, vote_stats

    if votes is not None:
        return summary_from_stats(vote_stats(*votes)[0], "vote_distribution")
    if report.judged_items:
        return summary_from_stats(judgement_stats(report.judged_items, rankings=False)[0], config.consensus.value)
    return None


def _class_weights(spec: str, counts: np.ndarray):
    import torch

    if spec == "none":
        return None
    if spec == "balanced":
        w = counts.sum() / (len(counts) * np.maximum(counts, 1))
    else:
        try:
            w = np.array([float(x) for x in spec.split(",")])
        except ValueError as e:
            raise ValueError(f"class_weights must be none, balanced or numbers, got {spec!r}") from e
        if len(w) != len(counts) or (w <= 0).any():
            raise ValueError(f"class_weights needs {len(counts)} positive numbers, got {spec!r}")
    logger.info("class weights: %s", np.round(w, 3).tolist())
    return torch.tensor(w, dtype=torch.float)


def _sample(texts: list[str], config: TrainConfig) -> list[str]:
    if len(texts) <= config.norm_samples:
        return texts
    return random.Random(config.seed).sample(texts, config.norm_samples)


def _final_loss(trainer) -> float | None:
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return losses[-1] if losses else None


def _finish(model, tok, spec: RewardSpec, rewards: np.ndarray, metrics: dict, config: TrainConfig) -> Path:
    """Add normalisation statistics and metrics to the spec and write the bundle."""
    from rewardserve.training.models import save_bundle

    std = float(rewards.std())
    norm = Normalization(float(rewards.mean()), std) if std > 0 else None
    spec = spec.with_updates(normalization=norm, metrics=metrics)
    out = save_bundle(model, tok, spec, config.output_dir)
    (out / "training_config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    logger.info("bundle written to %s", out)
    return out
