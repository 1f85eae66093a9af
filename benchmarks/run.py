"""One benchmark run: every system measured side by side on the same texts, then the report.

Per variant: the offline ONNX Runtime limit, rewardserve (batching) under the closed-loop sweep
(gRPC, and OpenRLHF-style HTTP with ``--protocols grpc,http``) and open-loop Poisson load, and
rewardserve with max batch 1. Once: the offline limits of every other backend and precision
(:mod:`benchmarks.offline`), the no-op RewardService (the load generator's ceiling), the
per-request PyTorch servers (fp32, and bf16 where the CPU has it), OpenRLHF's ``serve_rm`` when
its venv exists, and with ``--suites trickle`` the trickle check (:mod:`benchmarks.trickle`).
The load comes from ``--client-procs`` processes. The machine is shared and absolute times
drift, so the report leads with ratios between systems measured minutes apart.

Example::

    results = run_bench(BenchConfig(bundle="runs/hh-pairwise-onnx", source_bundle="runs/hh-pairwise"))
    results["ratios"]["int8"]["server_vs_limit"]
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import fields, replace
from pathlib import Path

from rewardserve.benchmarks.client_pool import ClientPool, run_one
from rewardserve.benchmarks.config import BenchConfig
from rewardserve.benchmarks.environment import default_data, default_variant, environment
from rewardserve.benchmarks.hardware import cpu_bf16
from rewardserve.benchmarks.http_client import openrlhf_body
from rewardserve.benchmarks.limit import best_limit, measure_limit
from rewardserve.benchmarks.loadgen import LoadSpec
from rewardserve.benchmarks.offline import offline_limits
from rewardserve.benchmarks.peers import litserve, litserve_missing, serve_rm, serve_rm_missing
from rewardserve.benchmarks.ratios import bars, limit_items_per_s, ratios
from rewardserve.benchmarks.report import write_report
from rewardserve.benchmarks.server_proc import REPO, ServerProcess, server_processes_default
from rewardserve.benchmarks.trickle import run_trickle
from rewardserve.benchmarks.workload import Workload
from rewardserve.service.config import ModelSource, Provider, ServiceConfig

from rewardserve.bundle import RewardSpec

logger = logging.getLogger(__name__)

TINY_DIR = REPO / ".cache" / "bench-tiny"


class Bench:
    """The state one run shares: config, requests per protocol, the client pool, results."""

    def __init__(self, config: BenchConfig, workload: Workload, pool: ClientPool | None):
        self.config, self.workload, self.pool = config, workload, pool
        grpc_requests = workload.requests(config.items_per_request)
        # The same groups of texts as the gRPC requests, as OpenRLHF's JSON bodies.
        self.requests = {"grpc": grpc_requests, "http": [
            (openrlhf_body([item.text for item in msg.items]), items, tokens) for msg, items, tokens in grpc_requests],
            "litserve": [({"text": msg.items[0].text}, 1, tokens) for msg, _, tokens in grpc_requests]}
        self.logs = config.out / "logs"

    def point(self, server: ServerProcess, protocol: str, spec: LoadSpec, keep_latencies: bool) -> dict:
        """One load point against a started server, with the server's CPU and batching stats."""
        before = server.snapshot()
        result = run_one(server.address(protocol), protocol, self.requests[protocol], spec, self.pool,
                         server.processes)
        point = {**result.summary(), **server.snapshot().since(before), "protocol": protocol}
        if keep_latencies:
            point["latencies_ms"] = [round(x * 1000, 3) for x in result.latencies_s]
        logger.info("%s %s %s c=%s rate=%s: %.1f items/s p50 %.1f ms p99 %.1f ms errors %d", server.name, protocol,
                    spec.mode, spec.concurrency, spec.rate_rps, point["items_per_s"], point["p50_ms"],
                    point["p99_ms"], point["error_count"])
        return point

    def closed_specs(self) -> list[LoadSpec]:
        c = self.config
        warm = min(1.0, 0.25 * c.duration_s)
        return [LoadSpec(concurrency=n, duration_s=c.duration_s, warmup_s=warm, max_requests=c.max_requests,
                         timeout_s=c.request_timeout_s, seed=c.seed) for n in c.concurrency]

    def system(self, server: ServerProcess, protocols: tuple[str, ...], open_loop: bool = False,
               rewardserve: bool = False) -> dict:
        """Start a server, run the closed-loop sweep per protocol (and gRPC open loop), stop it."""
        c = self.config
        out: dict = {"name": server.name, "closed": [], "open": [], "http": []}
        with server.start(c.startup_timeout_s):
            if rewardserve:  # what it chose to serve (backend auto), named in the report
                out["served"] = server.served()
            for protocol in protocols:
                key = "closed" if protocol == "grpc" else "http"  # litserve: its HTTP route
                out[key] = [self.point(server, protocol, s, s.concurrency == c.distribution_concurrency)
                            for s in self.closed_specs()]
            if open_loop and c.open_loop_fractions and out["closed"]:
                peak = max(p["items_per_s"] for p in out["closed"])
                warm = min(1.0, 0.25 * c.duration_s)
                for f in c.open_loop_fractions:
                    spec = LoadSpec(rate_rps=max(f * peak / c.items_per_request, 0.1), duration_s=c.duration_s,
                                    warmup_s=warm, max_requests=c.max_requests, timeout_s=c.request_timeout_s,
                                    seed=c.seed)
                    p = self.point(server, "grpc", spec, False)
                    p["fraction_of_peak"], p["offered_items_per_s"] = f, p["offered_rps"] * c.items_per_request
                    out["open"].append(p)
        return out


def tiny_onnx() -> Path:
    """The reliability suite's tiny pairwise ONNX bundle, built once under :data:`TINY_DIR`."""
    from rewardserve.benchmarks.reliability.bundles import tiny_bundle

    return tiny_bundle(TINY_DIR, "pairwise")


def resolve_tiny(config: BenchConfig) -> BenchConfig:
    """With ``tiny``: build (once) the tiny pairwise bundle and serve it."""
    if not config.tiny:
        return config
    return replace(config, bundle=tiny_onnx(), source_bundle=config.source_bundle or TINY_DIR / "tiny-pairwise")


def torch_dtypes(config: BenchConfig) -> list[str]:
    """The per-request PyTorch baselines to run: auto = fp32 + bf16 (if the CPU has it), fp32 + fp16 on CUDA."""
    if "auto" not in config.torch_dtypes:
        return list(config.torch_dtypes)
    return ["fp32", "fp16"] if config.device == "cuda" else ["fp32"] + (["bf16"] if cpu_bf16() else [])


def noop_processes(config: BenchConfig) -> int:
    """The no-op ceiling runs as many processes as the rewardserve it is the ceiling of (auto included)."""
    return config.server_processes or server_processes_default()


def check_server_processes(config: BenchConfig) -> None:
    """Refuse --server-processes / --server-backend against a rewardserve without those settings."""
    have = {f.name for f in fields(ServiceConfig)}
    if config.server_processes and "processes" not in have:
        raise ValueError("--server-processes: this rewardserve has no `serve --processes` yet")
    if config.server_backend and "backend" not in have:
        raise ValueError("--server-backend: this rewardserve has no `serve --backend` yet")
    if config.server_engine and "engine" not in have:
        raise ValueError("--server-engine: this rewardserve has no `serve --engine` yet")


def _baselines(bench: Bench, results: dict) -> None:
    c, systems = bench.config, results["systems"]
    protocols = c.protocols
    if c.noop_baseline:
        noop = ServerProcess.noop(bench.logs, noop_processes(c), http="http" in protocols)
        systems["noop"] = bench.system(noop, protocols)
    if c.torch_enabled:
        for dtype in torch_dtypes(c):
            server = ServerProcess.torch(c.source_bundle, c.threads or os.cpu_count() or 1, bench.logs, c.device, dtype)
            systems[f"torch-{dtype}"] = bench.system(server, ("grpc",))
    missing = "off" if c.serve_rm == "off" else serve_rm_missing()
    if missing is None and c.tiny and c.serve_rm == "auto":  # its model is MiniLM-L6: a ratio to it means nothing here
        missing = "serve_rm runs MiniLM-L6, not the tiny model (compare on the MiniLM bundle; --serve-rm on forces it)"
    if missing is None:
        server = serve_rm(bench.logs, RewardSpec.load(c.bundle).max_length)
        systems["openrlhf-serve_rm"] = bench.system(server, ("http",))
    elif c.serve_rm == "on":
        raise RuntimeError(f"serve_rm asked for but cannot run: {missing}")
    else:
        results["skipped"].append({"name": "openrlhf serve_rm", "reason": missing})
        logger.info("skipping OpenRLHF serve_rm: %s", missing)
    _litserve(bench, results)


def _litserve(bench: Bench, results: dict) -> None:
    c = bench.config
    missing = "off" if c.litserve == "off" else litserve_missing()
    if missing is None and c.items_per_request != 1:
        missing = "its /predict takes one text per request"
    if missing is None:
        server = litserve(bench.logs, c.bundle, RewardSpec.load(c.bundle).max_length, c.threads or os.cpu_count() or 1)
        results["systems"]["litserve"] = bench.system(server, ("litserve",))
    elif c.litserve == "on":
        raise RuntimeError(f"litserve asked for but cannot run: {missing}")
    else:
        results["skipped"].append({"name": "litserve", "reason": missing})


def _variant(bench: Bench, variant: str, provider: Provider, default: str) -> dict:
    c = bench.config
    onnx = c.onnx_file(variant, default)  # bf16 runs the fp32 file, auto the default variant's
    threading = ServiceConfig(models=(ModelSource("bench", str(c.bundle)),),
                              intra_op_threads=c.threads).threading(provider)
    v: dict = {"limit": best_limit(c.bundle, onnx, bench.workload.encoded, threading, c.limit_batch_sizes,
                                   provider, min_time_s=min(3.0, c.duration_s))}
    server = ServerProcess.rewardserve(c.bundle, variant, c.threads, c.max_batch_items, c.max_wait_ms, bench.logs,
                                       provider.value, allow_failed_parity=c.allow_failed_parity,
                                       max_batch_tokens=c.max_batch_tokens, http="http" in c.protocols,
                                       processes=c.server_processes, backend=c.server_backend,
                                       engine=c.server_engine)
    v["rewardserve"] = bench.system(server, c.protocols, open_loop=True, rewardserve=True)
    # The machine is shared: time the limit's best batch size again after the sweep, so the
    # ratio uses the better of two limits minutes apart (conservative) and the drift shows.
    v["limit_recheck"] = measure_limit(c.bundle, onnx, bench.workload.encoded, v["limit"]["threads"],
                                       (v["limit"]["best_batch_size"],), provider,
                                       min_time_s=min(3.0, c.duration_s), workers=v["limit"]["workers"])
    if c.nobatch_baseline:
        server = ServerProcess.rewardserve(c.bundle, variant, c.threads, 1, 0.0, bench.logs, provider.value,
                                           allow_failed_parity=c.allow_failed_parity, processes=c.server_processes,
                                           backend=c.server_backend, engine=c.server_engine)
        v["rewardserve_nobatch"] = bench.system(server, ("grpc",))
    return v


def run_bench(config: BenchConfig) -> dict:
    """Measure everything, write JSON, Markdown and plots under ``config.out``; return the results."""
    config = resolve_tiny(config)
    check_server_processes(config)
    config.out.mkdir(parents=True, exist_ok=True)
    provider = Provider.cuda if config.device == "cuda" else Provider.cpu
    data = config.data or default_data(config.bundle)
    workload = Workload.load(config.bundle, data, config.max_texts, config.seed)
    results: dict = {"config": config.to_dict(), "environment": environment(config), "workload": workload.describe(),
                     "default_variant": default_variant(config.bundle, provider, config.allow_failed_parity),
                     "variants": {}, "systems": {}, "skipped": [], "trickle": []}
    with contextlib.ExitStack() as stack:
        bench = Bench(config, workload, None)
        if config.client_procs > 1:  # spawned once, reused by every point of the run
            bench.pool = stack.enter_context(ClientPool(config.client_procs, bench.requests))
        pool = bench.pool
        if "sweep" in config.suites:
            for variant in config.variants:
                results["variants"][variant] = _variant(bench, variant, provider, results["default_variant"])
            _baselines(bench, results)
            # ORT rows: the better of the limit before and after the sweep, as the ratios use
            measured = {v["limit"]["variant"]: {**v["limit"], "items_per_s": limit_items_per_s(v)}
                        for v in results["variants"].values()}
            results["offline"] = offline_limits(config, Path(data), workload.encoded, measured, provider)
            results["skipped"] += results["offline"]["skipped"]
        if "trickle" in config.suites:
            results["trickle"] = run_trickle(config, bench.requests["grpc"], bench.logs, provider,
                                             results["default_variant"] if results["default_variant"] in
                                             config.variants else config.variants[0], pool)
    results["ratios"] = ratios(results, config)
    results["bars"] = bars(results["ratios"], results["default_variant"])
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_report(results, config.out)
    return results
