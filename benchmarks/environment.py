"""What a run records about where it ran, and what it serves by default."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

from rewardserve.benchmarks.config import BenchConfig
from rewardserve.benchmarks.hardware import cpu_bf16
from rewardserve.benchmarks.server_proc import REPO
from rewardserve.benchmarks.workload import HH_DEV
from rewardserve.service.config import Provider

from rewardserve.bundle import BundleError, RewardSpec
from rewardserve.enums import ModelKind
from rewardserve.manifest import Manifest

TWEETS_DEV = HH_DEV.parents[1] / "hate-speech-offensive" / "dev.csv"
VERSIONED = ("rewardserve", "onnxruntime", "onnxruntime-gpu", "openvino", "grpcio", "aiohttp", "tokenizers", "numpy",
             "protobuf", "torch", "transformers")


def default_data(bundle: Path) -> Path:
    """HH dialogues for pairwise models, tweets for classifiers."""
    return TWEETS_DEV if RewardSpec.load(bundle).kind is ModelKind.classifier else HH_DEV


def default_variant(bundle: Path, provider: Provider, allow_failed_parity: bool) -> str:
    """The variant rewardserve serves when no precision is asked for."""
    from rewardserve.service.engine.models import choose_variant

    manifest = Manifest.load(bundle)
    try:  # what a user gets by default: a variant that passed parity
        return choose_variant(manifest, provider, None, False).precision.value
    except BundleError:
        return choose_variant(manifest, provider, None, allow_failed_parity).precision.value


def environment(config: BenchConfig) -> dict:
    """CPU, threads, load and package versions of this run."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    versions = {}
    for name in VERSIONED:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "cpu_bf16": cpu_bf16(), "threads": config.threads,
            "client_procs": config.client_procs, "server_processes": config.server_processes,
            "server_engine": config.server_engine or "auto",
            "load_average_at_start": list(os.getloadavg()), "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions, "git_commit": commit,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
