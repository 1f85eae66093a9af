"""Lower-precision variants of the optimized fp32 graph: fp16 (CUDA EP) and int8 (CPU)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from rewardserve.export.config import Int8Method
from rewardserve.export.per_token import quantize_per_token

from rewardserve.enums import Precision

if TYPE_CHECKING:
    from rewardserve.export.config import ExportConfig

logger = logging.getLogger(__name__)

# Ops kept in fp32 in the fp16 graph: the squares and means of an unfused LayerNorm/RMSNorm
# overflow fp16 (65504) on activations of a few hundred.
FP16_OP_BLOCK_LIST = ("Pow", "ReduceMean", "Sqrt", "Reciprocal")
# ``dynamic`` int8 quantizes the weight matmuls (and fused Attention's QKV projection) with
# per-tensor activation scales. The embedding Gather stays fp32: quantizing it costs accuracy
# and saves no time.
INT8_OP_TYPES = ("MatMul", "Attention")
# ``per_token`` int8 (the default, export/per_token.py) quantizes activations per token: on the
# HH model 98-99% of pairs kept their order at ~1.8-2x the speed of the fp32 export.
# ``blockwise`` int8 writes MatMulNBits with 8-bit weights in blocks along K and
# accuracy level 4 (int8 compute with activations quantized per block at run time). On the HH
# MiniLM reward model per-tensor dynamic activations flipped 5.5% of close pairs; blockwise
# scales flipped 1% but ORT 1.32 runs 8-bit MatMulNBits no faster than fp32 on this CPU.
INT8_ACCURACY_LEVEL = 4

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


def quantize_int8_blockwise(src: Path, dst: Path, block_size: int) -> Path:
    """Write a copy of ``src`` whose MatMuls are MatMulNBits: int8 weights and int8 compute, per block."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    config = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=True,
                                          accuracy_level=INT8_ACCURACY_LEVEL, bits=8)
    with _quiet_root_logger():
        quantizer = MatMulNBitsQuantizer(onnx.load(str(src)), algo_config=config)
        quantizer.process()
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=False)
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


def variant_method(precision: Precision, config: ExportConfig, keep_fp32: tuple[str, ...] = ()) -> str:
    """One line saying how a variant is made, for the manifest."""
    if precision is Precision.fp32:
        return "fp32, ORT transformers fusions" if config.optimize else "fp32, as exported"
    if precision is Precision.fp16:
        return f"fp16 weights and compute, fp32 I/O, kept fp32: {', '.join(FP16_OP_BLOCK_LIST)}"
    if config.int8_method is Int8Method.per_token:
        return ("int8 per_token: MatMulIntegerToFloat, int8 weights per output channel, uint8 activations with a "
                f"scale and offset per token; kept fp32 (largest calibration error): {', '.join(keep_fp32) or 'none'}")
    if config.int8_method is Int8Method.blockwise:
        return (f"int8 blockwise: MatMulNBits 8-bit weights, block {config.int8_block_size}, "
                f"accuracy level {INT8_ACCURACY_LEVEL} (int8 compute); attention kept fp32")
    return (f"int8 dynamic: quantize_dynamic {'/'.join(INT8_OP_TYPES)}, "
            f"{'per-channel' if config.int8_per_channel else 'per-tensor'} weights")


def make_variant(precision: Precision, fp32_optimized: Path, dst: Path, config: ExportConfig,
                 keep_fp32: tuple[str, ...] = ()) -> Path:
    """Write the variant of ``precision`` derived from an optimized fp32 graph."""
    if precision is Precision.fp32:
        dst.write_bytes(fp32_optimized.read_bytes())
    elif precision is Precision.fp16:
        convert_fp16(fp32_optimized, dst)
    elif config.int8_method is Int8Method.per_token:
        quantize_per_token(fp32_optimized, dst, keep_fp32)
    elif config.int8_method is Int8Method.blockwise:
        quantize_int8_blockwise(fp32_optimized, dst, config.int8_block_size)
    else:
        quantize_int8(fp32_optimized, dst, config.int8_per_channel, config.int8_reduce_range)
    return dst
