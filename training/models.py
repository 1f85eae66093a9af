"""Loading base models for reward training and writing model bundles."""

from __future__ import annotations

import logging
from pathlib import Path

from rewardserve.bundle import RewardSpec

logger = logging.getLogger(__name__)


def load_model_and_tokenizer(name_or_path: str, id2label: dict[int, str], truncation_side: str = "left"):
    """Load a sequence-classification model and its fast tokenizer, ready for reward training.

    Works for encoders (BERT, RoBERTa, DeBERTa) and decoders (GPT-2, Llama, Qwen2). Decoders
    that lack a pad token get their EOS token as pad (as TRL does), and the model config
    learns the pad id so the sequence-classification head reads the last real token whatever
    the padding side. ``name_or_path`` is a local directory or, for users who are online, a
    Hugging Face Hub name.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name_or_path, use_fast=True)
    if not tok.is_fast:
        raise ValueError(f"{name_or_path}: a fast tokenizer (tokenizer.json) is required for serving")
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ValueError(f"{name_or_path}: tokenizer has neither a pad nor an EOS token")
        tok.pad_token = tok.eos_token
        logger.info("tokenizer has no pad token: using EOS %r", tok.eos_token)
    tok.truncation_side = truncation_side
    model = AutoModelForSequenceClassification.from_pretrained(
        name_or_path,
        num_labels=len(id2label),
        id2label=dict(id2label),
        label2id={v: k for k, v in id2label.items()},
        ignore_mismatched_sizes=True,  # a base trained with another head gets a fresh one
    )
    model.config.pad_token_id = tok.pad_token_id
    return model, tok


def save_bundle(model, tokenizer, spec: RewardSpec, directory: str | Path) -> Path:
    """Write weights, tokenizer and ``reward.json``: the model bundle the export stage reads."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    spec.save(directory)
    return directory
