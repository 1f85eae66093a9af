"""The benchmark's limit: the best offline figure among every backend and precision installed.

ONNX Runtime runs every variant of the bundle this provider can serve (fp32 and int8 on CPU,
fp32 and fp16 on CUDA; the served variants' limits are reused); OpenVINO (fp32, and bf16 where
the CPU has it) runs ``model_fp32.onnx``; PyTorch (sdpa) runs the model bundle batched (fp32 and
bf16 on CPU, fp32 and fp16 on CUDA). Each in its own subprocess but ONNX Runtime (in-process, as
before). What cannot run here is listed with the reason, so ``server / limit`` says what it
is measured against.

Example::

    offline = offline_limits(config, workload_args, measured={"int8": v["limit"]}, provider=Provider.cpu)
    offline["best"]["name"], offline["best"]["items_per_s"]
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from rewardserve.benchmarks.backend_limits import candidates
from rewardserve.benchmarks.config import BenchConfig
from rewardserve.benchmarks.limit import best_limit
from rewardserve.benchmarks.server_proc import REPO
from rewardserve.service.config import ModelSource, Provider, ServiceConfig

from rewardserve.bundle import BundleError
from rewardserve.manifest import Manifest

logger = logging.getLogger(__name__)

ORT_VARIANTS = {"cpu": ("fp32", "int8"), "cuda": ("fp32", "fp16")}


def _row(backend: str, precision: str, limit: dict) -> dict:
    keep = ("items_per_s", "tokens_per_s", "best_batch_size", "workers", "threads", "by_batch_size", "alternatives",
            "provider", "precision_used", "version", "attention")
    return {"name": f"{backend} {precision}", "backend": backend, "precision": precision,
            **{k: limit[k] for k in keep if k in limit}}


def _subprocess_limit(config: BenchConfig, data: Path, backend: str, precision: str, log: Path) -> dict:
    argv = [sys.executable, "-m", "rewardserve.benchmarks.backend_limits", backend, precision,
            "--bundle", str(config.bundle), "--data", str(data), "--max-texts", str(config.max_texts),
            "--seed", str(config.seed), "--batch-sizes", ",".join(map(str, config.limit_batch_sizes)),
            "--min-time-s", str(min(3.0, config.duration_s)), "--device", config.device]
    if config.source_bundle is not None:
        argv += ["--source-bundle", str(config.source_bundle)]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as err:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO, env=env, timeout=1800)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-3:])
        raise RuntimeError(f"exit {proc.returncode}: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def offline_limits(config: BenchConfig, data: Path, encoded, measured: dict[str, dict], provider: Provider) -> dict:
    """Every limit this host can run (rows, best first among those measured) and the skipped ones."""
    manifest = Manifest.load(config.bundle)
    threading = ServiceConfig(models=(ModelSource("bench", str(config.bundle)),),
                              intra_op_threads=config.threads).threading(provider)
    rows, skipped = [], []
    for variant in ORT_VARIANTS[config.device]:
        if variant in measured:
            rows.append(_row("onnxruntime", variant, measured[variant]))
            continue
        try:
            manifest.variant(variant)
        except BundleError as e:  # a bundle exported without this variant
            skipped.append({"name": f"onnxruntime {variant}", "reason": str(e)})
            continue
        if not config.other_backends_baseline:
            skipped.append({"name": f"onnxruntime {variant}", "reason": "--no-other-backends"})
            continue
        lim = best_limit(config.bundle, variant, encoded, threading, config.limit_batch_sizes, provider,
                         min_time_s=min(3.0, config.duration_s))
        rows.append(_row("onnxruntime", variant, lim))
    for backend, precision, reason in candidates(config.device, config.source_bundle is not None, config.bundle):
        name = f"{backend} {precision}"
        if not config.other_backends_baseline:
            reason = reason or "--no-other-backends"
        if reason:
            skipped.append({"name": name, "reason": reason})
            continue
        try:
            lim = _subprocess_limit(config, data, backend, precision, config.out / "logs" / f"limit-{backend}-{precision}.log")
        except (RuntimeError, subprocess.SubprocessError, ValueError) as e:
            logger.warning("limit %s failed: %s", name, e)
            skipped.append({"name": name, "reason": f"failed: {e}"})
            continue
        logger.info("limit %s: %.1f items/s (batch %s)", name, lim["items_per_s"], lim["best_batch_size"])
        rows.append(_row(backend, precision, lim))
    rows.sort(key=lambda r: -r["items_per_s"])
    return {"rows": rows, "skipped": skipped, "best": rows[0] if rows else None}
