"""Load a model bundle in PyTorch and export it to ONNX with dynamic batch and sequence axes."""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardserve.bundle import RewardSpec

logger = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
ENCODER_TYPES = ("bert", "roberta", "deberta", "deberta-v2", "distilbert", "xlm-roberta", "electra", "mpnet")


@dataclass
class SourceModel:
    """The PyTorch fp32 model of a bundle with its tokenizer and contract."""

    model: Any
    tokenizer: Any
    spec: RewardSpec
    directory: Path

    @property
    def model_type(self) -> str:
        """The HF architecture family (``bert``, ``gpt2``, ``llama``...)."""
        return self.model.config.model_type

    @property
    def is_decoder(self) -> bool:
        """True for causal LMs, which pool the last non-pad token and may be left-padded."""
        return self.model_type not in ENCODER_TYPES

    @property
    def pad_token_id(self) -> int:
        """The id the service pads with (the tokenizer's, else the model config's)."""
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.model.config.pad_token_id
        if pad is None:
            raise ValueError(f"{self.directory}: neither the tokenizer nor the config defines a pad token")
        return int(pad)


def load_source(bundle: Path) -> SourceModel:
    """Load a model bundle's weights (fp32, eval mode), fast tokenizer and ``reward.json``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    spec = RewardSpec.load(bundle)
    tok = AutoTokenizer.from_pretrained(bundle, use_fast=True)
    if not tok.is_fast:
        raise ValueError(f"{bundle}: a fast tokenizer (tokenizer.json) is required for serving")
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token  # as training does; the config's pad id must agree
    model = AutoModelForSequenceClassification.from_pretrained(bundle, dtype="float32").eval()
    if model.config.num_labels != spec.num_labels:
        raise ValueError(
            f"{bundle}: model has {model.config.num_labels} logits but reward.json names {spec.num_labels} labels"
        )
    if model.config.pad_token_id is None and tok.pad_token_id is not None:
        model.config.pad_token_id = tok.pad_token_id
    return SourceModel(model=model, tokenizer=tok, spec=spec, directory=Path(bundle))


def export_onnx(source: SourceModel, path: Path, opset: int) -> Path:
    """Export the model to ``path``: int64 tokenizer inputs, ``logits`` [batch, num_labels].

    Uses optimum-onnx's exporter, which patches known tracing problems of each family; falls
    back to ``torch.onnx.export`` for architectures optimum does not know.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-") as tmp:
        try:
            _export_optimum(source, Path(tmp), opset)
            shutil.move(str(Path(tmp) / "model.onnx"), path)
        except (KeyError, ValueError, NotImplementedError) as e:
            logger.warning("optimum cannot export %s (%s); using torch.onnx.export", source.model_type, e)
            _export_torch(source, path, opset)
    return path


def _export_optimum(source: SourceModel, directory: Path, opset: int) -> None:
    from optimum.exporters.onnx import onnx_export_from_model

    onnx_export_from_model(
        source.model, directory, opset=opset, task="text-classification", do_validation=False,
        do_constant_folding=True,
    )


def _export_torch(source: SourceModel, path: Path, opset: int) -> None:
    import torch

    tok = source.tokenizer
    sample = tok(["a short text", "a somewhat longer text for the dummy batch"], padding=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    axes = {n: {0: "batch_size", 1: "sequence_length"} for n in names}
    axes["logits"] = {0: "batch_size"}

    class _Logits(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, *args):
            return self.model(**dict(zip(names, args, strict=True))).logits

    torch.onnx.export(
        _Logits(source.model), tuple(sample[n] for n in names), str(path), input_names=names,
        output_names=["logits"], dynamic_axes=axes, opset_version=opset, dynamo=False,
    )


def save_tokenizer(source: SourceModel, out: Path) -> list[str]:
    """Write the tokenizer files into the ONNX bundle; return their names."""
    written = source.tokenizer.save_pretrained(out)
    names = sorted({Path(p).name for p in written})
    missing = [n for n in TOKENIZER_FILES if not (out / n).is_file()]
    if missing:
        raise ValueError(f"tokenizer of {source.directory} did not produce {missing}")
    return names
