"""ONNX Runtime's transformers optimizer: attention, (skip) LayerNorm, GELU and embedding fusions."""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

# HF model_type -> ORT optimizer model_type. Llama and Qwen2 have no optimizer of their own
# in ORT; the GPT-2 one fuses their RMSNorms (SimplifiedLayerNormalization, skip variants).
ORT_MODEL_TYPES = {
    "bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "deberta": "bert", "deberta-v2": "bert",
    "distilbert": "bert", "electra": "bert", "mpnet": "bert",
    "gpt2": "gpt2", "llama": "gpt2", "qwen2": "gpt2",
}
# Note: BERT's fused Attention takes the attention mask as per-row lengths, so the optimized
# encoder graph assumes right padding (what the service sends; left-padded BERT is wrong anyway,
# its pooler reads position 0).
# The exported rotary graph has position_ids of batch 1 (no position_ids input); ORT's fused
# RotaryEmbedding requires them per batch row, so batched runs fail. Keep rotary unfused.
NO_ROTARY_FUSION = ("llama", "qwen2")
# The CPU graphs (fp32, int8) keep attention unfused. On the HH MiniLM model (batch 8 x 128,
# one thread, CPU time) ORT 1.32's fused CPU Attention kernel made the graph 6% slower than the
# unfused export (the MatMuls it replaces cost the same; the fused kernel adds its own work),
# and the int8 variant needs the Q/K/V projections as separate MatMuls to quantize them.
# The fp16 graph, meant for CUDA, keeps every fusion.
CPU_FUSE_ATTENTION = False


def optimize_onnx(src: Path, dst: Path, model_type: str, num_heads: int, hidden_size: int,
                  fuse_attention: bool = True) -> dict[str, int]:
    """Write the fused graph of ``src`` to ``dst``; return the fused-operator counts (may be empty).

    Uses the Python fusions only (``opt_level=0``): the file stays provider-neutral, and
    ONNX Runtime applies its own graph optimizations for the chosen provider at load.
    ``fuse_attention=False`` keeps attention as plain MatMul/Softmax and residual Adds out of
    LayerNorm: the CPU graphs use it (see ``CPU_FUSE_ATTENTION``).
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    ort_type = ORT_MODEL_TYPES.get(model_type)
    if ort_type is None:
        logger.warning("no ONNX Runtime optimizer for model_type %r: fp32 graph left unfused", model_type)
        dst.write_bytes(src.read_bytes())
        return {}
    options = FusionOptions(ort_type)
    if model_type in NO_ROTARY_FUSION:
        options.enable_rotary_embeddings = False
    if not fuse_attention:
        options.enable_attention = False
        options.enable_skip_layer_norm = False
        options.enable_bias_skip_layer_norm = False
    optimized = optimize_model(
        str(src), model_type=ort_type, num_heads=num_heads, hidden_size=hidden_size,
        optimization_options=options, opt_level=0, use_gpu=False,
    )
    fusions = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
    optimized.save_model_to_file(str(dst))
    logger.info("optimized %s graph (ORT optimizer %r): fusions %s", model_type, ort_type, fusions or "none")
    return fusions


def heads_and_hidden(config) -> tuple[int, int]:
    """Return (num_heads, hidden_size) from a HF config, whatever the family calls them."""
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", None)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None)
    if not heads or not hidden:
        raise ValueError(f"config of model_type {config.model_type!r} names no attention heads or hidden size")
    return int(heads), int(hidden)
