"""Parity of each ONNX variant against PyTorch fp32, and the gate that fails a variant.

Parity checks what is served: the batch-1 and right-padded runs are encoded by the server's
own encoder, truncation and padding (:class:`TextEncoder`, :func:`pad_batch`: position ids
too), after asserting that its token ids equal the Hugging Face tokenizer's for every text.
PyTorch and the ONNX backends get those same arrays. Decoders add a left-padded run from the
HF tokenizer (not served; the classification head must still find the last real token).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rewardserve.export.config import Tolerances
from rewardserve.export.onnx_export import SourceModel
from rewardserve.export.texts import ParityTexts
from rewardserve.service.engine.encoding import TextEncoder, pad_batch

from rewardserve.activations import sigmoid, softmax
from rewardserve.enums import ModelKind, Precision

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParityRun:
    """One way of batching the parity texts: its name and the model inputs of each batch."""

    name: str
    batches: list[dict[str, np.ndarray]]


class TokenMismatch(ValueError):
    """The server's encoder and the Hugging Face tokenizer give different token ids for a text."""


def build_runs(source: SourceModel, texts: ParityTexts, input_names: list[str], batch_size: int,
               encoder: TextEncoder | None = None) -> list[ParityRun]:
    """The runs parity compares: bs1 and batched right-padded (the server's encoding), left-padded for decoders.

    ``encoder`` is the server's encoder of the bundle's ``tokenizer.json``; without it (library
    callers) the HF tokenizer's batches are used as they are.
    """
    sides = ["right", "left"] if source.is_decoder else ["right"]
    runs = [ParityRun("batch1", _batches(source, texts.texts, input_names, 1, "right", encoder))]
    runs += [
        ParityRun(f"batch{batch_size}_{side}_pad",
                  _batches(source, texts.texts, input_names, batch_size, side, encoder if side == "right" else None))
        for side in sides
    ]
    return runs


def _batches(source: SourceModel, texts: list[str], names: list[str], size: int, side: str,
             encoder: TextEncoder | None) -> list[dict]:
    tok, spec = source.tokenizer, source.spec
    tok.padding_side = side
    tok.truncation_side = spec.truncation_side.value
    out = []
    for i in range(0, len(texts), size):
        enc = tok(texts[i : i + size], truncation=True, max_length=spec.max_length, padding=True, return_tensors="np")
        if encoder is not None:
            enc = _served(encoder, texts[i : i + size], enc, source.pad_token_id, spec.truncation_side, i)
        missing = [n for n in names if n not in enc]
        if missing:
            raise ValueError(f"the ONNX graph expects inputs {missing} that the tokenizer does not produce")
        out.append({n: np.asarray(enc[n]).astype(np.int64) for n in names})
    tok.padding_side = "right"
    return out


def _served(encoder: TextEncoder, texts: list[str], hf, pad_id: int, truncation, first: int) -> dict[str, np.ndarray]:
    """The server's padded batch of ``texts``, after checking its tokens against the HF tokenizer's ``hf``."""
    feed = pad_batch(encoder.encode_batch(texts, truncation), pad_id)
    for row in range(len(texts)):
        n = int(hf["attention_mask"][row].sum())
        ours = feed["input_ids"][row, : int(feed["attention_mask"][row].sum())]
        if ours.tolist() != hf["input_ids"][row, :n].tolist():
            raise TokenMismatch(f"parity text {first + row}: the server's encoder gives {len(ours)} tokens "
                                f"{ours[:8].tolist()}..., the Hugging Face tokenizer {n} tokens "
                                f"{hf['input_ids'][row, :8].tolist()}...: scores served would differ from PyTorch's")
    return feed


def torch_logits(source: SourceModel, runs: list[ParityRun]) -> dict[str, np.ndarray]:
    """Return PyTorch fp32 logits of each run, rows in text order."""
    import torch

    result = {}
    with torch.inference_mode():
        for run in runs:
            chunks = [source.model(**{k: torch.from_numpy(v) for k, v in b.items()}).logits for b in run.batches]
            result[run.name] = torch.cat(chunks).float().numpy()
    return result


def onnx_logits(path: Path, runs: list[ParityRun], provider: str = "cpu") -> dict[str, np.ndarray]:
    """Return ONNX Runtime logits of each run from the model at ``path``, through the server's backend."""
    from rewardserve.service.backends.ort import OrtBackend
    from rewardserve.service.config import Provider

    return backend_logits(OrtBackend(path, Provider(provider), intra_op_threads=1), runs)


def backend_logits(backend, runs: list[ParityRun]) -> dict[str, np.ndarray]:
    """Return the logits of each run from a served backend (``Backend.run``), rows in text order."""
    return {run.name: np.concatenate([backend.run(b) for b in run.batches]).astype(np.float32) for run in runs}


def compare(reference: dict[str, np.ndarray], actual: dict[str, np.ndarray], kind: ModelKind, reward_index: int) -> dict[str, Any]:
    """Return the parity metrics of ``actual`` logits against ``reference``, over all runs."""
    ref = np.concatenate([reference[k] for k in reference])
    got = np.concatenate([actual[k] for k in reference])
    non_finite = int((~np.isfinite(got)).sum())
    diff = np.abs(np.nan_to_num(got, nan=np.inf) - ref)
    reward_diff = diff[:, reward_index]
    if kind is ModelKind.pairwise:
        prob_diff = np.abs(sigmoid(got) - sigmoid(ref))
        agreement = float(np.mean([_ordering_agreement(reference[k], actual[k], reward_index) for k in reference]))
        agreement_metric = "pairwise_ordering_agreement"
        extra = {**_flip_margins(reference, actual, reward_index),
                 "max_abs_pair_prob_diff": _pair_prob_diff(reference, actual, reward_index)}
        prob_metric = "max_abs_pair_prob_diff"
    else:
        prob_diff = np.abs(softmax(got) - softmax(ref))
        agreement = float(np.mean(np.argmax(got, axis=1) == np.argmax(ref, axis=1)))
        agreement_metric = "argmax_agreement"
        extra = {}
        prob_metric = "max_abs_prob_diff"
    return {
        "max_abs_logit_diff": float(diff.max()),
        "mean_abs_logit_diff": float(diff.mean()),
        "max_abs_reward_diff": float(reward_diff.max()),
        "mean_abs_reward_diff": float(reward_diff.mean()),
        "max_abs_prob_diff": float(np.nan_to_num(prob_diff, nan=1.0).max()),
        "agreement": agreement,
        "agreement_metric": agreement_metric,
        "prob_metric": prob_metric,  # the probability the gate bounds (see gate())
        "non_finite": non_finite,
        "n_rows": len(ref),
        "runs": {k: {"max_abs_logit_diff": float(np.abs(actual[k] - reference[k]).max())} for k in reference},
        **extra,
    }


def _ordering_agreement(ref: np.ndarray, got: np.ndarray, idx: int) -> float:
    # Rows 2k and 2k+1 form a pair: (chosen, rejected) from the data, or neighbours otherwise.
    n = len(ref) - len(ref) % 2
    ref_sign = np.sign(ref[0:n:2, idx] - ref[1:n:2, idx])
    got_sign = np.sign(got[0:n:2, idx] - got[1:n:2, idx])
    return float(np.mean(ref_sign == got_sign))


def _pair_prob_diff(reference: dict, actual: dict, idx: int) -> float:
    # Bradley-Terry P(row 2k preferred over row 2k+1) = sigmoid(r_2k - r_2k+1), what Compare returns.
    worst = 0.0
    for k in reference:
        n = len(reference[k]) - len(reference[k]) % 2
        r = reference[k][0:n:2, idx] - reference[k][1:n:2, idx]
        g = actual[k][0:n:2, idx] - actual[k][1:n:2, idx]
        d = np.nan_to_num(np.abs(sigmoid(g) - sigmoid(r)), nan=1.0)
        worst = max(worst, float(d.max()) if len(d) else 0.0)
    return worst


def _flip_margins(reference: dict, actual: dict, idx: int) -> dict[str, float]:
    # Says whether reordered pairs were near-ties: compare the largest reference margin among
    # flipped pairs with the typical margin and with max_abs_reward_diff.
    ref_m, flipped = [], []
    for k in reference:
        n = len(reference[k]) - len(reference[k]) % 2
        r = reference[k][0:n:2, idx] - reference[k][1:n:2, idx]
        g = actual[k][0:n:2, idx] - actual[k][1:n:2, idx]
        ref_m.append(np.abs(r))
        flipped.append(np.abs(r)[np.sign(r) != np.sign(g)])
    margins, flips = np.concatenate(ref_m), np.concatenate(flipped)
    return {
        "median_reference_pair_margin": float(np.median(margins)) if len(margins) else 0.0,
        "max_reference_margin_of_flipped_pair": float(flips.max()) if len(flips) else 0.0,
    }


def gate(precision: Precision, metrics: dict[str, Any], tolerances: Tolerances) -> str:
    """Return '' if the variant passes, else a message naming variant, metric, value and limit."""
    name = str(getattr(precision, "value", precision))  # a variant Precision, or OpenVINO's bf16
    if metrics["non_finite"]:
        return f"{name}: non_finite={metrics['non_finite']} NaN/Inf values in the logits (must be 0)"
    max_diff = tolerances.max_logit_diff(precision)
    if max_diff is not None and not metrics["max_abs_logit_diff"] <= max_diff:
        return f"{name}: max_abs_logit_diff={metrics['max_abs_logit_diff']:.3g} exceeds tolerance {max_diff:g}"
    min_agree = tolerances.min_agreement(precision)
    if min_agree is not None and metrics["agreement"] < min_agree:
        return f"{name}: {metrics['agreement_metric']}={metrics['agreement']:.4f} below minimum {min_agree:g}"
    # Agreement is blind to a uniform shift or scale; these bound the size of the error.
    max_mean = tolerances.max_mean_reward_diff(precision)
    if max_mean is not None and not metrics["mean_abs_reward_diff"] <= max_mean:
        return f"{name}: mean_abs_reward_diff={metrics['mean_abs_reward_diff']:.3g} exceeds tolerance {max_mean:g}"
    max_prob, prob_metric = tolerances.max_prob_diff(precision), metrics["prob_metric"]
    if max_prob is not None and not metrics[prob_metric] <= max_prob:
        return f"{name}: {prob_metric}={metrics[prob_metric]:.3g} exceeds tolerance {max_prob:g}"
    return ""
