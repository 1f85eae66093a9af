"""The OpenVINO backend: the exported ONNX variant compiled by OpenVINO for the CPU, fp32 or bf16,
or an int8 IR export made with NNCF (``model_openvino_int8.xml``, ``model_openvino_int8_packed.xml``).

OpenVINO reads ``model_fp32.onnx`` directly (ONNX Runtime's fused ops included: its ONNX
frontend knows the ``com.microsoft`` transformer ops). bf16 is OpenVINO's inference precision
hint, honoured only on CPUs that compute bf16 natively (AVX-512 BF16 or AMX, which OpenVINO
reports as the ``BF16`` optimization capability); elsewhere bf16 is refused rather than emulated.

Shapes stay dynamic (batch and sequence): OpenVINO's CPU plugin caches the kernels of each
shape it has seen, so the engine's right-padded batches need no buckets here.

A packed graph (``model_fp32_packed.onnx``, inputs with ``segment_starts``; ``export/packed.py``)
is run on packed rows: ``run`` packs the padded batch it is given and returns its items' logits
in order (:mod:`~rewardserve.service.backends.packing`), so parity, the reference check and
serving call it like any backend. Its provider ends in ``:packed``.

Concurrency: one compiled model with ``streams`` infer requests. ``run`` may be called from
several worker threads at once; each call takes a free request from a pool (an infer request
is not thread-safe). For one worker per core, ``streams = workers`` with one thread each;
for one worker using every core, one stream with ``threads = cores``.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import openvino as ov
from rewardserve.service.backends.packing import ROW_TOKENS, SEGMENT_STARTS, pack, unpack

from rewardserve.bundle import BundleError

logger = logging.getLogger(__name__)

KNOWN_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", SEGMENT_STARTS)
PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "bf16"}  # int8 IR: the ops left unquantized in bf16
DEVICE = "CPU"
# Activations per int8 scale in an int8-weight matmul (the CPU plugin's dynamic quantization): weight-only int8 ran
# 1.10-1.14x bf16 with it and 0.84-0.93x without (benchmarks/openvino_int8_options.py, both quick bundles).
DYNAMIC_QUANTIZATION_GROUP = 32


def has_native_bf16() -> bool:
    """True when OpenVINO's CPU plugin computes bf16 natively on this CPU (AVX-512 BF16 / AMX)."""
    return "BF16" in ov.Core().get_property(DEVICE, "OPTIMIZATION_CAPABILITIES")


def version() -> str:
    """The OpenVINO runtime version, e.g. ``2026.4.1-22982-...``."""
    return ov.get_version()


class OpenVinoBackend:
    """One OpenVINO compiled model; ``run(batch)`` returns float32 logits ``[len(batch), num_labels]``.

    Example::

        backend = OpenVinoBackend("bundle/model_fp32.onnx", "bf16", threads=1, streams=2)
        backend.provider                       # "OpenVINO:CPU:bf16"
        logits = backend.run(pad_batch(encoded, pad_id=0))
    """

    pad_to_multiple = 0  # dynamic shapes are cheap on OpenVINO's CPU plugin

    def __init__(self, path: str | Path, precision: str = "fp32", threads: int = 0, streams: int = 1,
                 row_tokens: int = ROW_TOKENS):
        path = Path(path)
        if not path.is_file():
            raise BundleError(f"{path}: not found")
        if precision not in PRECISION_HINTS:
            raise ValueError(f"OpenVINO runs precision fp32, bf16 or int8 (an NNCF IR), not {precision!r}")
        core = ov.Core()
        hint = PRECISION_HINTS[precision] if precision != "int8" or has_native_bf16() else "f32"
        if precision == "bf16" and not has_native_bf16():
            raise ValueError(f"OpenVINO bf16 needs a CPU with AVX-512 BF16 or AMX; this one "
                             f"({core.get_property(DEVICE, 'FULL_DEVICE_NAME')}) has none")
        config = {
            "INFERENCE_PRECISION_HINT": hint,
            "NUM_STREAMS": str(max(1, streams)),
            # Pinning would fight the event loop and the tokenizer threads for the same cores.
            "ENABLE_CPU_PINNING": "NO",
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = str(threads * max(1, streams))
        if precision == "int8":  # weight-compressed int8 IRs: quantize each matmul's activations as it runs
            config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = str(DYNAMIC_QUANTIZATION_GROUP)
        try:
            model = core.read_model(str(path))
            self.compiled = core.compile_model(model, DEVICE, config)
        except Exception as e:  # OpenVINO raises RuntimeError with the frontend's message
            what = "ONNX model" if path.suffix == ".onnx" else "OpenVINO model"
            raise BundleError(f"{path}: cannot load {what} (OpenVINO): {e}") from e
        self.path = path
        self.input_names = [i.get_any_name() for i in self.compiled.inputs]
        unknown = [n for n in self.input_names if n not in KNOWN_INPUTS]
        if unknown or "input_ids" not in self.input_names:
            raise BundleError(f"{path}: unsupported inputs {self.input_names} (expected a subset of {KNOWN_INPUTS})")
        outputs = [o.get_any_name() for o in self.compiled.outputs]
        self._output = self.compiled.outputs[outputs.index("logits") if "logits" in outputs else 0]
        # Report the precision OpenVINO actually computes in, not the hint that was asked for.
        actual = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        compute = "bf16" if actual == ov.Type.bf16 else "fp32"
        self.precision = "int8" if precision == "int8" else compute
        self.packed = SEGMENT_STARTS in self.input_names
        self.row_tokens = row_tokens  # a packed graph's shortest row; the batcher counts packed tokens with it
        self.provider = (f"OpenVINO:{DEVICE}:{self.precision}" + (f"+{compute}" if precision == "int8" else "")
                         + (":packed" if self.packed else ""))
        self.streams = int(self.compiled.get_property("NUM_STREAMS"))
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(max(1, self.streams)):
            self._requests.put(self.compiled.create_infer_request())
        logger.info("loaded %s on %s (%d streams, inputs %s)", path.name, self.provider, self.streams,
                    self.input_names)

    def run(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Run a padded batch and return float32 logits, one row per batch row."""
        where = None
        if self.packed:
            inputs, where = pack(inputs, self.row_tokens)
        feed = {k: v for k, v in inputs.items() if k in self.input_names}
        request = self._requests.get()  # blocks while every request is busy
        try:
            logits = np.array(request.infer(feed)[self._output], np.float32)  # a copy: the request reuses its buffer
        finally:
            self._requests.put(request)
        if where is not None:
            return unpack(logits, where)
        return logits if logits.ndim == 2 else logits.reshape(logits.shape[0], -1)
