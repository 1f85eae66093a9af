"""One benchmark run: every system measured side by side on the same texts, then the report.

Per variant: the offline ONNX Runtime limit, rewardserve (batching) under the closed-loop
sweep and open-loop Poisson load, and rewardserve with max batch 1. Once: the per-request
PyTorch server under the same closed-loop single-item sweep. The machine is shared and
absolute times drift, so the report leads with ratios between systems measured minutes apart.

Example::

    results = run_bench(BenchConfig(bundle="runs/hh-pairwise-onnx", source_bundle="runs/hh-pairwise"))
    results["ratios"]["fp32"]["server_vs_limit"]
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

from rewardserve.benchmarks.config import BenchConfig
from rewardserve.benchmarks.limit import best_limit, measure_limit
from rewardserve.benchmarks.loadgen import LoadSpec, Request, run_point
from rewardserve.benchmarks.report import write_report
from rewardserve.benchmarks.server_proc import REPO, ServerProcess
from rewardserve.benchmarks.workload import HH_DEV, Workload
from rewardserve.service.config import ModelSource, Provider, ServiceConfig

from rewardserve.bundle import BundleError, RewardSpec
from rewardserve.enums import ModelKind
from rewardserve.manifest import Manifest

logger = logging.getLogger(__name__)

TWEETS_DEV = HH_DEV.parents[1] / "hate-speech-offensive" / "dev.csv"
BAR_CONCURRENCY = 64
# The bars: (ratio key, threshold, description).
BARS = (
    ("server_vs_limit", 0.85, ">= 0.85x the raw ONNX Runtime limit at 64 single-item clients"),
    ("server_vs_torch", 2.5, ">= 2.5x the per-request PyTorch fp32 server at 64 clients (bar: default variant)"),
    ("padding_efficiency", 0.85, "padding efficiency >= 0.85 at 64 clients"),
    ("open_p99_vs_p50_at_1", 5.0, "open loop at half peak: p99 <= 5x the p50 at one client"),
)
VERSIONED = ("rewardserve", "onnxruntime", "onnxruntime-gpu", "grpcio", "tokenizers", "numpy", "protobuf",
             "torch", "transformers")


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
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "threads": config.threads,
            "load_average_at_start": list(os.getloadavg()), "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions, "git_commit": commit,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


async def _measure(server: ServerProcess, requests: list[Request], specs: list[LoadSpec],
                   keep_latencies_at: int | None) -> list[dict]:
    """Run load points against a started server; add server CPU and batching stats to each."""
    points = []
    for spec in specs:
        before = server.snapshot()
        result = await run_point(server.target, requests, spec)
        point = {**result.summary(), **server.snapshot().since(before)}
        if spec.mode == "closed" and spec.concurrency == keep_latencies_at:
            point["latencies_ms"] = [round(x * 1000, 3) for x in result.latencies_s]
        logger.info("%s %s c=%s rate=%s: %.1f items/s p50 %.1f ms p99 %.1f ms errors %d", server.name,
                    spec.mode, spec.concurrency, spec.rate_rps, point["items_per_s"], point["p50_ms"],
                    point["p99_ms"], point["error_count"])
        points.append(point)
    return points


def _closed_specs(config: BenchConfig) -> list[LoadSpec]:
    warm = min(1.0, 0.25 * config.duration_s)
    return [LoadSpec(concurrency=c, duration_s=config.duration_s, warmup_s=warm, max_requests=config.max_requests,
                     timeout_s=config.request_timeout_s, seed=config.seed) for c in config.concurrency]


def _system(config: BenchConfig, server: ServerProcess, requests: list[Request], open_loop: bool) -> dict:
    """Start a server, run the closed-loop sweep (and open loop at fractions of its peak), stop it."""
    with server.start(config.startup_timeout_s):
        closed = asyncio.run(_measure(server, requests, _closed_specs(config), config.distribution_concurrency))
        opened = []
        if open_loop and config.open_loop_fractions:
            peak_items = max(p["items_per_s"] for p in closed)
            warm = min(1.0, 0.25 * config.duration_s)
            specs = [LoadSpec(rate_rps=max(f * peak_items / config.items_per_request, 0.1), duration_s=config.duration_s,
                              warmup_s=warm, max_requests=config.max_requests, timeout_s=config.request_timeout_s,
                              seed=config.seed) for f in config.open_loop_fractions]
            opened = asyncio.run(_measure(server, requests, specs, None))
            for p, f in zip(opened, config.open_loop_fractions, strict=True):
                p["fraction_of_peak"] = f
                p["offered_items_per_s"] = p["offered_rps"] * config.items_per_request
    return {"name": server.name, "closed": closed, "open": opened}


def _at(points: list[dict], concurrency: int) -> dict | None:
    return next((p for p in points if p["concurrency"] == concurrency), None)


def limit_items_per_s(variant_results: dict) -> float:
    """The better of the limit measured before and after the sweep."""
    recheck = variant_results.get("limit_recheck", {}).get("items_per_s", 0.0)
    return max(variant_results["limit"]["items_per_s"], recheck)


def ratios(results: dict, config: BenchConfig) -> dict:
    """Per variant: server / limit, server / per-request PyTorch, batching on / off, latency ratio."""
    ref = BAR_CONCURRENCY if BAR_CONCURRENCY in config.concurrency else max(config.concurrency)
    torch_sys = results["systems"].get("torch-fp32")
    out = {}
    for variant, v in results["variants"].items():
        on = _at(v["rewardserve"]["closed"], ref)
        limit = limit_items_per_s(v)
        r = {"at_concurrency": ref, "items_per_s": on["items_per_s"], "limit_items_per_s": limit,
             "server_vs_limit": on["items_per_s"] / limit,
             "peak_vs_limit": max(p["items_per_s"] for p in v["rewardserve"]["closed"]) / limit,
             "padding_efficiency": on.get("padding_efficiency"), "mean_batch_size": on.get("mean_batch_size")}
        if torch_sys:
            t = _at(torch_sys["closed"], ref)
            r["server_vs_torch"] = on["items_per_s"] / t["items_per_s"] if t and t["items_per_s"] else math.nan
        if "rewardserve_nobatch" in v:
            off = _at(v["rewardserve_nobatch"]["closed"], ref)
            r["batching_on_vs_off"] = on["items_per_s"] / off["items_per_s"] if off["items_per_s"] else math.nan
        one = _at(v["rewardserve"]["closed"], 1)
        half = next((p for p in v["rewardserve"]["open"] if p["fraction_of_peak"] == 0.5), None)
        if one and half:
            r["p50_at_1_ms"], r["open_half_peak_p99_ms"] = one["p50_ms"], half["p99_ms"]
            r["open_p99_vs_p50_at_1"] = half["p99_ms"] / one["p50_ms"]
        out[variant] = r
    return out


def bars(ratio: dict, default: str) -> list[dict]:
    """The issue's bars, each met or not, with the number behind it."""
    rows = []
    for key, threshold, text in BARS:
        for variant in ratio:
            value = ratio.get(variant, {}).get(key)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            met = value <= threshold if key == "open_p99_vs_p50_at_1" else value >= threshold
            rows.append({"bar": text, "variant": variant, "default_variant": variant == default, "value": value,
                         "threshold": threshold, "met": met})
    return rows


def run_bench(config: BenchConfig) -> dict:
    """Measure everything, write JSON, Markdown and plots under ``config.out``; return the results."""
    config.out.mkdir(parents=True, exist_ok=True)
    provider = Provider.cuda if config.device == "cuda" else Provider.cpu
    data = config.data or default_data(config.bundle)
    workload = Workload.load(config.bundle, data, config.max_texts, config.seed)
    requests = workload.requests(config.items_per_request)
    results: dict = {"config": config.to_dict(), "environment": environment(config), "workload": workload.describe(),
                     "default_variant": default_variant(config.bundle, provider, config.allow_failed_parity), "variants": {}, "systems": {}}
    logs = config.out / "logs"
    for variant in config.variants:
        v: dict = {}
        threading = ServiceConfig(models=(ModelSource("bench", str(config.bundle)),),
                                  intra_op_threads=config.threads).threading(provider)
        v["limit"] = best_limit(config.bundle, variant, workload.encoded, threading, config.limit_batch_sizes,
                                provider, min_time_s=min(3.0, config.duration_s))
        server = ServerProcess.rewardserve(config.bundle, variant, config.threads, config.max_batch_items,
                                           config.max_wait_ms, logs, provider.value,
                                           allow_failed_parity=config.allow_failed_parity,
                                           max_batch_tokens=config.max_batch_tokens)
        v["rewardserve"] = _system(config, server, requests, open_loop=True)
        # The machine is shared: time the limit's best batch size again after the sweep, so the
        # ratio uses the better of two limits minutes apart (conservative) and the drift shows.
        v["limit_recheck"] = measure_limit(config.bundle, variant, workload.encoded, v["limit"]["threads"],
                                           (v["limit"]["best_batch_size"],), provider,
                                           min_time_s=min(3.0, config.duration_s), workers=v["limit"]["workers"])
        if config.nobatch_baseline:
            server = ServerProcess.rewardserve(config.bundle, variant, config.threads, 1, 0.0, logs, provider.value,
                                               allow_failed_parity=config.allow_failed_parity)
            v["rewardserve_nobatch"] = _system(config, server, requests, open_loop=False)
        results["variants"][variant] = v
    if config.torch_enabled:
        for dtype in ("fp32", "fp16") if config.device == "cuda" else ("fp32",):
            server = ServerProcess.torch(config.source_bundle, config.threads or os.cpu_count() or 1, logs,
                                         config.device, dtype)
            results["systems"][f"torch-{dtype}"] = _system(config, server, requests, open_loop=False)
    results["ratios"] = ratios(results, config)
    results["bars"] = bars(results["ratios"], results["default_variant"])
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_report(results, config.out)
    return results
