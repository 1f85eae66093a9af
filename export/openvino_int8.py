"""OpenVINO int8 by NNCF: an fp32 ONNX graph -> an int8 IR, two ways.

The per-token int8 variant (``model_int8.onnx``) uses an ONNX Runtime contrib op that OpenVINO
does not read, so OpenVINO gets its own int8 model:

- ``weights`` (the default): ``nncf.compress_weights``, int8 weights per output channel
  (asymmetric); the CPU plugin quantizes each matmul's activations as it runs
  (``DYNAMIC_QUANTIZATION_GROUP_SIZE``, set by the backend). No calibration. It also compresses
  the packed graph (``model_fp32_packed.onnx``) into ``model_openvino_int8_packed.xml``.
- ``static``: ``nncf.quantize`` with the transformer preset: per-channel int8 weights and
  per-tensor activations calibrated on the server's encoding of the calibration texts.

Measured on both quick bundles (``benchmarks/openvino_int8_options.py``, benchmarks/README.md,
"OpenVINO int8 options"): static ran 1.5x bf16's speed but failed the int8 gates (HH agreement
0.970, tweets mean |Δreward| 0.088); weights ran 1.10-1.14x with agreement 0.99-1.0. Either is
served only if it passes the int8 gates (:mod:`rewardserve.export.serving`).

Example::

    xml = make_openvino_int8(OpenVinoInt8Method.weights, work / "model_fp32_unoptimized.onnx", [],
                             work / "model_openvino_int8.xml")
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
from pathlib import Path

import numpy as np
from rewardserve.export.config import OpenVinoInt8Method

logger = logging.getLogger(__name__)

OPENVINO_INT8_FILE = "model_openvino_int8.xml"
OPENVINO_INT8_PACKED_FILE = "model_openvino_int8_packed.xml"  # the packed graph's, by weight compression


def available() -> bool:
    """True when both openvino and nncf are installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("openvino", "nncf"))


def make_openvino_int8(method, onnx_path: Path, batches: list[dict[str, np.ndarray]], out: Path) -> Path:
    """Make the int8 IR of ``onnx_path`` at ``out`` by ``method`` (an OpenVinoInt8Method; ``static``
    calibrates on ``batches``, the model's inputs)."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(onnx_path))
    nncf.set_log_level(logging.WARNING)
    # NNCF draws its progress bars on stdout, which `rewardserve export --json` keeps for the manifest.
    with contextlib.redirect_stdout(sys.stderr):
        if OpenVinoInt8Method(method) is OpenVinoInt8Method.weights:
            quantized = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
            how = "int8 weights"
        else:
            names = {i.get_any_name() for i in model.inputs}
            items = [{k: v for k, v in b.items() if k in names} for b in batches]
            quantized = nncf.quantize(model, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER,
                                      subset_size=len(items))
            how = f"static, {len(items)} calibration items"
    ov.save_model(quantized, str(out), compress_to_fp16=False)
    logger.info("  openvino int8 (NNCF, %s) -> %s", how, out.name)
    return out
