"""Scoring with PyTorch and the evaluation metrics of ``rewardserve eval``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from rewardserve.training.data import (
    LabelledText,
    PreferenceGroup,
    TextFormatter,
    load_classification,
    load_preferences,
)

from rewardserve.activations import sigmoid, softmax
from rewardserve.bundle import RewardSpec
from rewardserve.enums import ModelKind

logger = logging.getLogger(__name__)


def score_texts(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 64) -> np.ndarray:
    """Return the logits [N, num_labels] of ``texts``, batched by length to waste little padding."""
    import torch

    order = np.argsort([len(t) for t in texts])
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer([texts[i] for i in idx], truncation=True, max_length=max_length,
                            padding=True, return_tensors="pt").to(model.device)
            out[idx] = model(**enc).logits.float().cpu().numpy()
    return out


def expected_calibration_error(probs: np.ndarray, outcomes: np.ndarray, bins: int = 10) -> float:
    """ECE: bin-weighted |mean predicted probability − observed frequency|."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(probs, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(probs[m].mean() - outcomes[m].mean())
    return float(ece)


def pairwise_metrics(better: np.ndarray, worse: np.ndarray) -> dict[str, float]:
    """Accuracy (a tie counts as wrong), mean margin and ECE of σ(r_better − r_worse)."""
    diff = better - worse
    p = sigmoid(diff)
    # Both orientations of each pair: a calibrated model predicts p for "better wins" and
    # 1 - p for "worse wins"; otherwise ECE would only see outcomes of 1.
    probs = np.concatenate([p, 1 - p])
    outcomes = np.concatenate([np.ones_like(p), np.zeros_like(p)])
    return {
        "pairs": int(len(diff)),
        "accuracy": float((diff > 0).mean()),
        "ties": int((diff == 0).sum()),
        "mean_margin": float(diff.mean()),
        "ece": expected_calibration_error(probs, outcomes),
    }


def length_baselines(groups: list[PreferenceGroup]) -> dict[str, float]:
    """Accuracy of "prefer the longer response" and "prefer the shorter" (ties wrong)."""
    longer = shorter = n = 0
    for g in groups:
        for i, j in g.pairs:
            n += 1
            a, b = len(g.texts[i]), len(g.texts[j])
            longer += a > b
            shorter += a < b
    return {"prefer_longer": longer / n, "prefer_shorter": shorter / n}


def classifier_metrics(logits: np.ndarray, labels: np.ndarray, names: list[str], positive: str) -> dict[str, Any]:
    """Accuracy, macro-F1, ROC-AUC and the confusion matrix."""
    from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score

    probs = softmax(logits)
    pred = probs.argmax(-1)
    out: dict[str, Any] = {
        "examples": int(len(labels)),
        "accuracy": float((pred == labels).mean()),
        "macro_f1": float(f1_score(labels, pred, average="macro", labels=list(range(len(names))))),
        "labels": names,
        "confusion_matrix": confusion_matrix(labels, pred, labels=list(range(len(names)))).tolist(),
    }
    if len(set(labels.tolist())) > 1:
        if len(names) == 2:
            pos = names.index(positive)
            out["roc_auc"] = float(roc_auc_score(labels == pos, probs[:, pos]))
        else:
            out["roc_auc"] = float(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    return out


def classifier_eval(logits: np.ndarray, rows: list[LabelledText], names: list[str], positive: str) -> dict[str, Any]:
    """:func:`classifier_metrics` against the majority label, plus vote metrics when rows carry votes."""
    from rewardserve.training.vote_metrics import vote_metrics

    out = classifier_metrics(logits, np.array([r.label for r in rows]), names, positive)
    if rows and rows[0].votes is not None:
        out.update(vote_metrics(softmax(logits), np.array([r.soft for r in rows]), names))
    return out


def evaluate_preferences(model, tokenizer, spec: RewardSpec, groups: list[PreferenceGroup], batch_size: int = 64):
    """Score every text once and compute pairwise metrics over all comparisons."""
    texts = [t for g in groups for t in g.texts]
    rewards = score_texts(model, tokenizer, texts, spec.max_length, batch_size)[:, spec.reward_index]
    better, worse, pos = [], [], 0
    for g in groups:
        for i, j in g.pairs:
            better.append(rewards[pos + i])
            worse.append(rewards[pos + j])
        pos += len(g.texts)
    return {**pairwise_metrics(np.array(better), np.array(worse)), **length_baselines(groups)}


def evaluate_bundle(bundle: str | Path, data: str, batch_size: int = 64, **cls_kwargs: Any) -> dict[str, Any]:
    """Evaluate a model bundle on a data file with PyTorch; return the metrics."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    spec = RewardSpec.load(bundle)
    tok = AutoTokenizer.from_pretrained(bundle)
    tok.truncation_side = spec.truncation_side.value
    model = AutoModelForSequenceClassification.from_pretrained(bundle)
    if spec.kind is ModelKind.pairwise:
        groups, _ = load_preferences(data, TextFormatter(spec.prompt_template, spec.chat_template))
        metrics = evaluate_preferences(model, tok, spec, groups, batch_size)
    else:
        recipe = _training_recipe(bundle)
        keys = ("text_column", "label_column", "label_map", "label_votes")
        kw = {k: cls_kwargs.get(k) or recipe.get(k) for k in keys}
        kw = {k: v for k, v in kw.items() if v}
        rows, names, _ = load_classification(data, labels=spec.labels, **kw)
        logits = score_texts(model, tok, [r.text for r in rows], spec.max_length, batch_size)
        metrics = classifier_eval(logits, rows, names, spec.reward_label)
    return {"bundle": str(bundle), "data": str(data), "kind": spec.kind.value, **metrics}


def _training_recipe(bundle: str | Path) -> dict[str, Any]:
    """The bundle's training_config.json, for default column names and label map."""
    p = Path(bundle) / "training_config.json"
    return json.loads(p.read_text()) if p.is_file() else {}
