"""Lower-precision variants of the optimized fp32 graph: fp16 (CUDA EP) and dynamic int8 (CPU)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from rewardserve.enums import Precision

logger = logging.getLogger(__name__)

# Ops kept in fp32 in the fp16 graph: the squares and means of an unfused LayerNorm/RMSNorm
# overflow fp16 (65504) on activations of a few hundred.
FP16_OP_BLOCK_LIST = ("Pow", "ReduceMean", "Sqrt", "Reciprocal")
# Dynamic int8 quantizes the weight matmuls (and fused Attention's QKV projection). The
# embedding Gather stays fp32: quantizing it costs accuracy and saves no time.
INT8_OP_TYPES = ("MatMul", "Attention")

# Where each variant is meant to run; fp16 also loads on CPU so parity needs no GPU.
PROVIDERS = {
    Precision.fp32: ["CPUExecutionProvider"],
    Precision.fp16: ["CUDAExecutionProvider"],
    Precision.int8: ["CPUExecutionProvider"],
}


def convert_fp16(src: Path, dst: Path) -> Path:
    """Write an fp16 copy of ``src`` with fp32 inputs/outputs and overflow-prone ops in fp32."""
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(src)))
    model.convert_float_to_float16(keep_io_types=True, op_block_list=list(FP16_OP_BLOCK_LIST))
    model.save_model_to_file(str(dst))
    return dst


def quantize_int8(src: Path, dst: Path, per_channel: bool, reduce_range: bool) -> Path:
    """Write a dynamically quantized (int8 weights, per-batch activation scales) copy of ``src``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_root_logger():
        quantize_dynamic(
            str(src), str(dst), weight_type=QuantType.QInt8, per_channel=per_channel, reduce_range=reduce_range,
            op_types_to_quantize=list(INT8_OP_TYPES),
            # Fused contrib ops defeat shape inference; their outputs are fp32.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    return dst


@contextlib.contextmanager
def _quiet_root_logger():
    # The quantizer logs a line per tensor through the root logger at INFO.
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


def make_variant(precision: Precision, fp32_optimized: Path, dst: Path, per_channel: bool, reduce_range: bool) -> Path:
    """Write the variant of ``precision`` derived from the optimized fp32 graph."""
    if precision is Precision.fp32:
        dst.write_bytes(fp32_optimized.read_bytes())
    elif precision is Precision.fp16:
        convert_fp16(fp32_optimized, dst)
    else:
        quantize_int8(fp32_optimized, dst, per_channel, reduce_range)
    return dst
