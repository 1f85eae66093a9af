"""The packed graph of a BERT-family classifier: several texts per row, each attending only to itself.

The same weights as ``model_fp32.onnx``, exported with the inputs of
:mod:`rewardserve.service.backends.packing`: a 3-D ``attention_mask`` ``[rows, L, L]``
(block-diagonal), position ids that restart at every text, and ``segment_starts`` ``[rows, S]``;
the pooler and classifier run on each segment's first token, so the output is
``[rows, S, labels]``. Packing removes most padding from batches of mixed lengths (tweets at
64 single-item clients: 0.81 real / padded tokens). Only models built as ``bert`` + ``pooler`` +
``classifier`` (``BertForSequenceClassification``, e.g. MiniLM) are packed; decoders pool the last
token and have causal masks, and other encoders differ in their heads.

Example::

    if packable(source.model):
        export_packed(source, work / PACKED_FILE, opset=17)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from rewardserve.service.backends.packing import SEGMENT_STARTS, pack

logger = logging.getLogger(__name__)

PACKED_FILE = "model_fp32_packed.onnx"
INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", SEGMENT_STARTS)


def packable(model: Any) -> bool:
    """Whether ``model`` is a BERT classifier with absolute positions (what the packed graph rebuilds)."""
    bert = getattr(model, "bert", None)
    return (bert is not None and getattr(bert, "pooler", None) is not None and hasattr(model, "classifier")
            and getattr(model.config, "position_embedding_type", "absolute") == "absolute")


def packed_module(model: Any):
    """A torch module computing ``model``'s logits per packed segment (see the module docstring)."""
    import torch

    class Packed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids, position_ids, segment_starts):
            bert = self.model.bert
            blocked = (1.0 - attention_mask[:, None, :, :].to(torch.float32)) * torch.finfo(torch.float32).min
            hidden = bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids)
            for layer in bert.encoder.layer:
                out = layer(hidden, attention_mask=blocked)
                hidden = out[0] if isinstance(out, tuple) else out
            first = hidden.gather(1, segment_starts[..., None].expand(-1, -1, hidden.shape[-1]))
            return self.model.classifier(bert.pooler.activation(bert.pooler.dense(first)))

    return Packed().eval()


def export_packed(source: Any, path: Path, opset: int) -> Path:
    """Export ``source.model`` (a SourceModel; :func:`packable`) as a packed ONNX graph at ``path``."""
    import torch

    enc = source.tokenizer(["a short text", "a somewhat longer text for the sample batch", "three"], padding=True,
                           return_tensors="np")
    feeds, _ = pack({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}, row_tokens=16)
    axes = {"input_ids": {0: "rows", 1: "tokens"}, "attention_mask": {0: "rows", 1: "tokens", 2: "tokens_too"},
            "token_type_ids": {0: "rows", 1: "tokens"}, "position_ids": {0: "rows", 1: "tokens"},
            SEGMENT_STARTS: {0: "rows", 1: "segments"}, "logits": {0: "rows", 1: "segments"}}
    module = packed_module(source.model)
    with torch.inference_mode():
        torch.onnx.export(module, tuple(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in INPUTS), str(path),
                          input_names=list(INPUTS), output_names=["logits"], dynamic_axes=axes,
                          opset_version=opset, dynamo=False)
    logger.info("  packed graph -> %s (%.1f MB)", path.name, path.stat().st_size / 1e6)
    return path
