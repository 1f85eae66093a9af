"""The served combinations of an ONNX bundle: parity and speed of every (variant, runtime, precision, device).

Every combination runs through the server's own backends (``rewardserve.service.backends``) on
the server's own encoding (the parity runs of :mod:`rewardserve.export.parity`):

* ONNX Runtime: fp32 and int8 on the CPU; fp32 and fp16 on CUDA: with CUDA here their parity
  runs on CUDA, otherwise on the CPU provider and the combination says it is unverified on CUDA;
* OpenVINO (when installed): the fp32 variant at fp32 and, on CPUs with native bf16, at bf16,
  gated by the ``bf16_*`` tolerances; with nncf installed, an int8 IR (NNCF,
  :mod:`rewardserve.export.openvino_int8`) gated by the ``int8_*`` tolerances; for BERT
  classifiers, the packed graph (:mod:`rewardserve.export.packed`) at fp32 and bf16, and its
  int8 IR (weight compression), their parity run on the same padded batches, which their
  backend packs.

Speed is one single-threaded backend on the reference batch, as many rows as the runtime's auto
token budget holds (``backends.choice.measure_feeds``): the same measurement a server repeats
at load on a host unlike this one. The reference batch (the server's encoding of the first
parity texts, with PyTorch fp32 logits) is written to ``reference_logits.npz``.

Example::

    combinations, reference = record_combinations(config, source, files, runs, ref_logits, parity, failure, work)
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from rewardserve.export import openvino_int8
from rewardserve.export.config import ExportConfig, OpenVinoInt8Method
from rewardserve.export.onnx_export import SourceModel
from rewardserve.export.packed import PACKED_FILE, export_packed, packable
from rewardserve.export.parity import ParityRun, backend_logits, compare, gate, onnx_logits
from rewardserve.service.backends.choice import measure_feeds, race
from rewardserve.service.config import Provider
from rewardserve.service.engine.encoding import TextEncoder, pad_batch

from rewardserve.enums import Precision
from rewardserve.files import file_sha256
from rewardserve.manifest import (
    REFERENCE_LOGITS_FILE,
    Combination,
    Runtime,
    ServedPrecision,
    combination_sha256,
)

logger = logging.getLogger(__name__)

REFERENCE_TEXTS = 16
NOT_RUN = ("bf16: not checked", "int8: NNCF failed")  # failures of combinations that have nothing to run
UNVERIFIED_CUDA = "parity measured on the CPU provider: unverified on CUDA"


def write_reference(source: SourceModel, encoder: TextEncoder, texts: list[str], inputs: list[str],
                    work: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Encode the first texts as the server does, score them with PyTorch fp32, save them; return (arrays, info)."""
    import torch

    batch = texts[:REFERENCE_TEXTS]
    feed = pad_batch(encoder.encode_batch(batch, source.spec.truncation_side), source.pad_token_id)
    feed = {k: v for k, v in feed.items() if k in inputs}
    with torch.inference_mode():
        logits = source.model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits.float().numpy()
    arrays = {**feed, "logits": logits.astype(np.float32)}
    path = work / REFERENCE_LOGITS_FILE
    np.savez(path, **arrays)
    return arrays, {"file": path.name, "sha256": file_sha256(path), "n_texts": len(batch),
                    "seq_len": int(feed["input_ids"].shape[1])}


def record_combinations(config: ExportConfig, source: SourceModel, files: dict[Precision, Path],
                        runs: list[ParityRun], ref_logits: dict[str, np.ndarray], parity: dict, failure: dict,
                        reference: dict[str, np.ndarray], unoptimized: Path,
                        calibration: list[dict[str, np.ndarray]]) -> list[Combination]:
    """Every combination's parity (reusing the ONNX Runtime CPU parity already measured) and speed."""
    kind, idx = source.spec.kind, source.spec.reward_index
    cuda = _cuda_available()
    out = []
    for p, path in files.items():
        if p is not Precision.fp16:  # fp16 is for CUDA only; int8 for the CPU only
            out.append(_combination(Runtime.onnxruntime, p, p, "cpu", parity[p], failure[p], config,
                                    "CPUExecutionProvider"))
        if p is Precision.int8:
            continue
        if cuda:
            metrics = compare(ref_logits, onnx_logits(path, runs, "cuda"), kind, idx)
            out.append(_combination(Runtime.onnxruntime, p, p, "cuda", metrics, gate(p, metrics, config.tolerances),
                                    config, "CUDAExecutionProvider"))
        else:
            out.append(_combination(Runtime.onnxruntime, p, p, "cuda", parity[p], failure[p], config,
                                    "CPUExecutionProvider", UNVERIFIED_CUDA))
    if Precision.fp32 in files:  # OpenVINO's combinations belong to the fp32 model
        out += _openvino(config, files[Precision.fp32], runs, ref_logits, kind, idx)
        packed = None
        if config.openvino_packed and importlib.util.find_spec("openvino") is not None and packable(source.model):
            packed = export_packed(source, unoptimized.parent / PACKED_FILE, config.opset)
            out += _openvino(config, packed, runs, ref_logits, kind, idx, packed=True)
        if config.openvino_int8 and openvino_int8.available():
            out.append(_openvino_int8(config, unoptimized, openvino_int8.OPENVINO_INT8_FILE, calibration, runs,
                                      ref_logits, kind, idx))
            if packed is not None and config.openvino_int8_method is OpenVinoInt8Method.weights:
                out.append(_openvino_int8(config, packed, openvino_int8.OPENVINO_INT8_PACKED_FILE, [], runs,
                                          ref_logits, kind, idx, packed=True))
    return _with_speed(out, files, reference, config, cuda)


def _openvino(config: ExportConfig, path: Path, runs, ref_logits, kind, idx, packed: bool = False) -> list[Combination]:
    if importlib.util.find_spec("openvino") is None:
        logger.info("  openvino is not installed: no OpenVINO combinations (pip install 'rewardserve[cpu]')")
        return []
    from rewardserve.service.backends.openvino import OpenVinoBackend, has_native_bf16

    out = []
    for precision in (ServedPrecision.fp32, ServedPrecision.bf16):
        if precision is ServedPrecision.bf16 and not has_native_bf16():
            out.append(Combination(Runtime.openvino, precision, Precision.fp32, failure="bf16: not checked: this "
                                   "CPU has no native bf16 (AVX-512 BF16 or AMX)", packed=packed))
            continue
        backend = OpenVinoBackend(path, precision.value, threads=1)
        metrics = compare(ref_logits, backend_logits(backend, runs), kind, idx)
        c = _combination(Runtime.openvino, precision, Precision.fp32, "cpu", metrics,
                         gate(precision, metrics, config.tolerances), config, backend.provider, packed=packed)
        out.append(replace(c, file=path.name, sha256=combination_sha256(path)) if packed else c)
    return out


def _openvino_int8(config: ExportConfig, graph: Path, name: str, calibration, runs, ref_logits, kind, idx,
                   packed: bool = False) -> Combination:
    """The int8 IR of ``graph`` (``config.openvino_int8_method``), saved beside it as ``name``, and its parity."""
    from rewardserve.service.backends.openvino import OpenVinoBackend

    path = graph.parent / name
    try:
        openvino_int8.make_openvino_int8(config.openvino_int8_method, graph, calibration, path)
        backend = OpenVinoBackend(path, "int8", threads=1)
    except Exception as e:  # NNCF or OpenVINO could not make or load it: recorded, never served
        logger.warning("  openvino int8%s: NNCF failed: %s", " (packed)" if packed else "", e)
        return Combination(Runtime.openvino, ServedPrecision.int8, Precision.fp32, failure=f"int8: NNCF failed: {e}",
                           packed=packed)
    metrics = compare(ref_logits, backend_logits(backend, runs), kind, idx)
    c = _combination(Runtime.openvino, Precision.int8, Precision.fp32, "cpu", metrics,
                     gate(Precision.int8, metrics, config.tolerances), config, backend.provider, packed=packed)
    return replace(c, file=path.name, sha256=combination_sha256(path))


def _combination(runtime: Runtime, precision, variant: Precision, device: str, metrics: dict, failure: str,
                 config: ExportConfig, verified_on: str, note: str = "", packed: bool = False) -> Combination:
    metrics = {**metrics, "tolerances": config.tolerances.of(precision, metrics["prob_metric"])}
    c = Combination(runtime, ServedPrecision(getattr(precision, "value", precision)), variant, device,
                    passed=not failure, failure=failure, parity=metrics, verified_on=verified_on, note=note, packed=packed)
    _log(c, metrics, failure)
    return c


def _with_speed(combinations: list[Combination], files: dict, reference: dict[str, np.ndarray],
                config: ExportConfig, cuda: bool) -> list[Combination]:
    """The combinations with their reference tolerance and (those that run here) their speed."""
    from rewardserve.service.backends.runtimes import open_file

    feeds = {k: v for k, v in reference.items() if k != "logits"}
    entrants, tolerances = {}, {}
    for c in combinations:
        gate_value = config.tolerances.max_logit_diff(c.precision)
        if c.device == "cuda" and not cuda and gate_value is not None:
            # Not run here: a GPU server checks it against the reference logits at load, at its gate.
            tolerances[c.key] = max(gate_value, 1e-3)
        if c.failure.startswith(NOT_RUN) or (c.device == "cuda" and not cuda):  # nothing to open here
            continue
        path = files[c.variant].parent / c.file if c.file else files[c.variant]
        backend = open_file(path, c.runtime, c.precision, Provider(c.device), 1)
        diff = float(np.abs(backend.run(feeds) - reference["logits"]).max())
        # The bound at load: the gate where there is one, else a margin over what this host measured.
        tolerances[c.key] = max(gate_value or 0.0, 4 * diff, 1e-3)
        entrants[c.key] = (backend, measure_feeds(reference, c))
    speeds = race(entrants, config.bench_min_time_s) if config.throughput else {}
    for key, speed in speeds.items():
        logger.info("  %s: %.1f items/s (1 thread, reference batch, best of 3 interleaved rounds)", key, speed)
    return [replace(c, items_per_s=speeds.get(c.key, 0.0), reference_tolerance=tolerances.get(c.key))
            for c in combinations]


def _cuda_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def _log(c: Combination, metrics: dict, failure: str) -> None:
    logger.info("  %s max|dlogit|=%.3g %s=%.4f -> %s%s", c.key, metrics["max_abs_logit_diff"],
                metrics["agreement_metric"], metrics["agreement"], "FAILED " + failure if failure else "ok",
                f" ({c.note})" if c.note else "")
