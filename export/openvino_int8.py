"""OpenVINO int8 by NNCF post-training quantization: the un-optimized fp32 export -> an int8 IR.

The per-token int8 variant (``model_int8.onnx``) uses an ONNX Runtime contrib op that OpenVINO
does not read, so OpenVINO gets its own int8 model: NNCF's transformer preset (per-channel
int8 weights, per-tensor activations calibrated on the server's encoding of the calibration
texts; softmax and normalisation stay in floating point). It is served only if it passes the
int8 gates (:mod:`rewardserve.export.serving`).

Example::

    xml = quantize_openvino_int8(work / "model_fp32_unoptimized.onnx", calibration_batches,
                                 work / "model_openvino_int8.xml")
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

OPENVINO_INT8_FILE = "model_openvino_int8.xml"


def available() -> bool:
    """True when both openvino and nncf are installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("openvino", "nncf"))


def quantize_openvino_int8(onnx_path: Path, batches: list[dict[str, np.ndarray]], out: Path) -> Path:
    """Quantize ``onnx_path`` with NNCF on ``batches`` (the model's inputs) and save the IR at ``out``."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(onnx_path))
    names = {i.get_any_name() for i in model.inputs}
    items = [{k: v for k, v in b.items() if k in names} for b in batches]
    nncf.set_log_level(logging.WARNING)
    # NNCF draws its progress bars on stdout, which `rewardserve export --json` keeps for the manifest.
    with contextlib.redirect_stdout(sys.stderr):
        quantized = nncf.quantize(model, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=len(items))
    ov.save_model(quantized, str(out), compress_to_fp16=False)
    logger.info("  openvino int8 (NNCF, %d calibration items) -> %s", len(items), out.name)
    return out
