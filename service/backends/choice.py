"""Which combination (variant, runtime, precision, device) serves a bundle on this host, and why.

Export records every combination's parity and speed with a host fingerprint, and reference
inputs and PyTorch logits (``manifest.reference_logits``). At load, among the combinations that
passed parity and can run here (the runtime installed, native bf16 for bf16, CUDA for cuda):

* ``--backend X --precision Y`` serves exactly that one (refused if it failed parity); ``--packing on|off``
  keeps only the packed (or the padded) combinations;
* otherwise, on the export host, the fastest recorded one (static preference when export did
  not measure speed); on another host each candidate is re-measured, single-threaded on the
  reference batch, within ``selection_budget_s`` in all;
* the chosen backend's logits on the reference inputs must stay within the combination's
  ``reference_tolerance``, else the next candidate is tried.

The reason is logged. Bundles exported before combinations were recorded serve ONNX Runtime
variants as before (:func:`choose_variant`).
"""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path

import numpy as np
from rewardserve.service.auto_batching import AUTO_BATCH_TOKENS
from rewardserve.service.backends.runtimes import Served, open_file, resolve
from rewardserve.service.config import Provider, ServiceConfig

from rewardserve.bundle import BundleError
from rewardserve.enums import Precision
from rewardserve.files import file_sha256
from rewardserve.manifest import (
    MANIFEST_FILE,
    Combination,
    Manifest,
    Runtime,
    ServedPrecision,
    VariantInfo,
    combination_sha256,
    host_differences,
    host_fingerprint,
)

logger = logging.getLogger(__name__)

# Variant preference when no precision is asked for and nothing was measured: fast first, exact as the fallback.
PREFERENCE = {
    Provider.cuda: (Precision.fp16, Precision.fp32, Precision.int8),
    Provider.cpu: (Precision.int8, Precision.fp32, Precision.fp16),
}
COMBINATION_PREFERENCE = ("onnxruntime:int8", "onnxruntime:fp32", "openvino:bf16", "openvino:fp32",
                          "openvino:int8", "onnxruntime:fp16")


def choose_variant(manifest: Manifest, provider: Provider, precision: Precision | None,
                   allow_failed_parity: bool) -> VariantInfo:
    """Pick the ONNX Runtime variant to serve; raise BundleError if it is missing or failed parity."""
    where = Path(manifest.directory) / MANIFEST_FILE
    if precision is not None:
        v = manifest.variant(precision)
        if not v.passed and not allow_failed_parity:
            raise BundleError(
                f"{where}: the {v.precision.value} variant failed its parity check ({v.failure or 'no reason given'}); "
                "choose another precision or set allow_failed_parity"
            )
        return v
    candidates = [manifest.variants[p.value] for p in PREFERENCE[provider] if p.value in manifest.variants]
    for v in candidates:
        if v.passed or allow_failed_parity:
            return v
    failures = {v.precision.value: v.failure for v in candidates}
    raise BundleError(f"{where}: no variant passed its parity check ({failures or 'no variants'})")


def why_not_here(c: Combination, device: Provider) -> str:
    """Why a combination cannot run on this host ('' when it can)."""
    if c.device != device.value:
        return f"runs on {c.device}, this server on {device.value}"
    if c.runtime is Runtime.openvino:
        if importlib.util.find_spec("openvino") is None:
            return "openvino is not installed (pip install 'rewardserve[cpu]')"
        from rewardserve.service.backends.openvino import has_native_bf16

        if c.precision is ServedPrecision.bf16 and not has_native_bf16():
            return "this CPU has no native bf16 (AVX-512 BF16 or AMX)"
    return ""


def combination_path(c: Combination, manifest: Manifest, directory: Path) -> Path:
    """The file a combination runs: its own (checked against its sha256), else its variant's."""
    if not c.file:
        return manifest.variant(c.variant).path(directory)
    path = directory / c.file
    if not path.is_file() or combination_sha256(path) != c.sha256:
        raise BundleError(f"{path}: missing or changed since export (its sha256 is in {directory / MANIFEST_FILE})")
    return path


def load_reference(directory: Path, manifest: Manifest) -> dict[str, np.ndarray] | None:
    """The reference inputs and PyTorch logits export stored, checked against their sha256 (None if absent)."""
    info = manifest.reference_logits
    if not info:
        return None
    path = directory / info["file"]
    if not path.is_file() or file_sha256(path) != info.get("sha256"):
        raise BundleError(f"{path}: missing or changed since export (its sha256 is in {directory / MANIFEST_FILE})")
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def reference_diff(backend, reference: dict[str, np.ndarray]) -> float:
    """Max |Δlogit| of a backend's logits on the reference inputs against PyTorch's."""
    feeds = {k: v for k, v in reference.items() if k != "logits"}
    return float(np.abs(backend.run(feeds) - reference["logits"]).max())


def measure_feeds(reference: dict[str, np.ndarray], c: Combination) -> dict[str, np.ndarray]:
    """The reference rows one batch of this combination holds at its auto token budget (at least one)."""
    budget = AUTO_BATCH_TOKENS["openvino" if c.runtime is Runtime.openvino else c.device]
    rows = max(1, min(len(reference["input_ids"]), budget // reference["input_ids"].shape[1]))
    return {k: v[:rows] for k, v in reference.items() if k != "logits"}


def items_per_s(backend, feeds: dict[str, np.ndarray], seconds: float, min_runs: int = 2) -> float:
    """Rows per second of repeated runs of one batch (after one untimed run)."""
    backend.run(feeds)
    runs, start = 0, time.perf_counter()
    while runs < min_runs or time.perf_counter() - start < seconds:
        backend.run(feeds)
        runs += 1
    return len(feeds["input_ids"]) * runs / (time.perf_counter() - start)


def race(entrants: dict[str, tuple], seconds_each: float, rounds: int = 3) -> dict[str, float]:
    """Best items/s of each ``key: (backend, feeds)`` over interleaved rounds.

    Interleaving spreads a busy neighbour's load over every entrant (a shared machine), and the
    best round is the least disturbed one.
    """
    best = dict.fromkeys(entrants, 0.0)
    for _ in range(rounds):
        for key, (backend, feeds) in entrants.items():
            best[key] = max(best[key], items_per_s(backend, feeds, seconds_each / rounds))
    return best


def serve_combination(directory: Path, manifest: Manifest, config: ServiceConfig) -> Served:
    """Pick and open the combination to serve (see the module docstring)."""
    provider = Provider.cpu if config.backend is Runtime.openvino and config.provider is Provider.auto \
        else config.provider
    device = resolve(provider)
    if not manifest.combinations:
        return _legacy(directory, manifest, config, device)
    candidates, excluded = _candidates(manifest, config, device)
    if not candidates:
        packing = {None: "", True: ", packed"}.get(config.packing, ", unpacked")
        raise BundleError(f"{directory / MANIFEST_FILE}: no combination to serve for backend "
                          f"{config.backend or 'auto'}, precision {config.precision or 'auto'}{packing} on {device.value}: "
                          + "; ".join(f"{k}: {why}" for k, why in excluded.items()))
    reference = load_reference(directory, manifest)
    ranked, reason = _rank(candidates, manifest, config, directory, reference)
    workers, threads = config.threading(device)
    for c in ranked:
        backend = open_file(combination_path(c, manifest, directory), c.runtime, c.precision,
                            device, threads, streams=workers, cpu_fallback=config.provider is Provider.auto,
                            cuda_graphs_rows=config.max_batch_items if config.cuda_graphs else 0)
        if device is Provider.cuda and "CUDA" not in backend.provider:
            logger.warning("provider auto: CUDA failed to load for %s; falling back to the CPU combinations",
                           directory)
            return serve_combination(directory, manifest, _on_cpu(config))
        if reference is not None and c.reference_tolerance is not None:
            diff = reference_diff(backend, reference)
            if diff > c.reference_tolerance:
                logger.warning("%s: %s is off the reference logits by %.3g (> %.3g) on this host; trying the next",
                               directory, c.key, diff, c.reference_tolerance)
                continue
            reason += f"; reference logits within {diff:.2g} (<= {c.reference_tolerance:.2g})"
        return Served(backend, manifest.variant(c.variant), c.runtime, c.precision, device, workers, threads,
                      _passed(c, manifest), f"{c.key}: {reason}", c.note)
    raise BundleError(f"{directory}: no combination matches the reference logits on this host "
                      f"({[c.key for c in ranked]}); export the bundle again here")


def _on_cpu(config: ServiceConfig) -> ServiceConfig:
    from dataclasses import replace

    return replace(config, provider=Provider.cpu)


def _legacy(directory: Path, manifest: Manifest, config: ServiceConfig, device: Provider) -> Served:
    """A bundle without combinations: ONNX Runtime variants, chosen as before."""
    if config.backend is Runtime.openvino or config.precision is ServedPrecision.bf16 or config.packing:
        raise BundleError(f"{directory / MANIFEST_FILE}: exported before backends were recorded; only ONNX "
                          "Runtime can serve it (export it again for OpenVINO)")
    precision = None if config.precision is None else Precision(config.precision.value)
    variant = choose_variant(manifest, device, precision, config.allow_failed_parity)
    workers, threads = config.threading(device)
    backend = open_file(variant.path(directory), Runtime.onnxruntime, ServedPrecision(variant.precision.value),
                        device, threads, cpu_fallback=config.provider is Provider.auto)
    if device is Provider.cuda and "CUDA" not in backend.provider:
        device = Provider.cpu
        workers, threads = config.threading(device)
    return Served(backend, variant, Runtime.onnxruntime, ServedPrecision(variant.precision.value), device,
                  workers, threads, variant.passed, "exported before combinations were recorded: "
                  f"{variant.precision.value} variant by the old preference")


def _candidates(manifest: Manifest, config: ServiceConfig, device: Provider):
    candidates, excluded = [], {}
    for c in manifest.combinations:
        if config.backend is not None and c.runtime is not config.backend:
            continue
        if config.precision is not None and c.precision is not config.precision:
            continue
        if config.packing is not None and c.packed is not config.packing:
            continue
        why = why_not_here(c, device) or ("" if _passed(c, manifest) or config.allow_failed_parity
                                          else f"failed parity ({c.failure or manifest.variant(c.variant).failure})")
        if why:
            excluded[c.key] = why
        else:
            candidates.append(c)
    return candidates, excluded


def _passed(c: Combination, manifest: Manifest) -> bool:
    """An ONNX Runtime combination is its variant: both records must say it passed."""
    return c.passed and (c.runtime is not Runtime.onnxruntime or manifest.variant(c.variant).passed)


def _rank(candidates: list[Combination], manifest: Manifest, config: ServiceConfig, directory: Path,
          reference: dict[str, np.ndarray] | None) -> tuple[list[Combination], str]:
    """Candidates fastest first, and the reason."""
    def preference(c: Combination) -> int:
        key = f"{c.runtime.value}:{c.precision.value}"
        return COMBINATION_PREFERENCE.index(key) if key in COMBINATION_PREFERENCE else len(COMBINATION_PREFERENCE)

    if len(candidates) == 1:
        return candidates, "the only combination asked for that passed parity and runs here"
    differences = host_differences(manifest.host, host_fingerprint())
    if not differences or reference is None or config.selection_budget_s <= 0:
        speeds = {c.key: c.items_per_s for c in candidates}
        ranked = sorted(candidates, key=lambda c: (-c.items_per_s, preference(c)))
        if not any(speeds.values()):
            return ranked, "export measured no speed: the default preference"
        where = "the export host" if not differences else f"export-host figures (not re-measured: {differences})"
        return ranked, f"fastest that passed parity on {where}: " + _speeds(speeds)
    measured = _measure(candidates, manifest, directory, reference, config.selection_budget_s / len(candidates))
    ranked = sorted(candidates, key=lambda c: (-measured[c.key], preference(c)))
    return ranked, f"host differs from the export host ({'; '.join(differences)}): re-measured " + _speeds(measured)


def _measure(candidates: list[Combination], manifest: Manifest, directory: Path,
             reference: dict[str, np.ndarray], seconds: float) -> dict[str, float]:
    entrants = {}
    for c in candidates:
        try:
            backend = open_file(combination_path(c, manifest, directory), c.runtime, c.precision,
                                Provider(c.device), 1)
            entrants[c.key] = (backend, measure_feeds(reference, c))
        except Exception as e:  # a combination that cannot even run here is ranked last, with the reason
            logger.warning("%s: %s could not be opened here: %s", directory, c.key, e)
    return {c.key: 0.0 for c in candidates} | race(entrants, seconds)


def _speeds(speeds: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f} items/s" for k, v in sorted(speeds.items(), key=lambda kv: -kv[1]))
