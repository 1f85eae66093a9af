"""The trickle check: is ``max_wait_ms`` a bound when requests arrive faster than it?

For each server setting of ``max_wait_ms`` (the server's default, and 5 ms), open-loop Poisson
trickles of single-item requests at 4x, 2x and 1x the rate ``1 / max_wait_ms`` (where the
setting is 0, the CPU default, the rate of ``trickle_base_ms`` stands in). The server's own
histograms, scraped before and after each trickle, give the p99 of the queue time
(``rewardserve_queue_wait_seconds``) and of one batch's inference (``rewardserve_inference_seconds``);
the bar is ``queue p99 <= max_wait_ms + inference p99``. Both p99s are read at the histograms'
resolution: the bar is judged on the buckets' upper bounds (what the histogram proves), with
the interpolated values beside them.

Example::

    rows = run_trickle(config, requests, logs, provider)
    [(r["max_wait_ms"], r["multiple"], r["met"]) for r in rows]
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from rewardserve.benchmarks.client_pool import ClientPool, run_one
from rewardserve.benchmarks.config import BenchConfig
from rewardserve.benchmarks.loadgen import LoadSpec, Request
from rewardserve.benchmarks.scrape import bucket_delta, quantile
from rewardserve.benchmarks.server_proc import ServerProcess
from rewardserve.service.config import ModelSource, Provider, ServiceConfig

logger = logging.getLogger(__name__)

QUEUE = "rewardserve_queue_wait_seconds"
INFERENCE = "rewardserve_inference_seconds"


def effective_wait_ms(config: BenchConfig, setting: str, provider: Provider) -> float | None:
    """(None for the server's default) -> the wait the server will use, in ms."""
    if setting != "auto":
        return float(setting)
    return ServiceConfig(models=(ModelSource("bench", str(config.bundle)),)).wait_ms(provider)


def rates(wait_ms: float, multiples, base_ms: float) -> list[tuple[float, float]]:
    """(multiple, requests/s) of each trickle: multiples of 1 / max_wait_ms (1 / base_ms where the wait is 0)."""
    period_s = (wait_ms if wait_ms > 0 else base_ms) / 1000.0
    return [(m, m / period_s) for m in multiples]


def judge(point: dict, wait_ms: float) -> dict:
    """The bar for one trickle from its histogram deltas: queue p99 <= wait + inference p99."""
    q, inf = point["queue_p99"], point["inference_p99"]
    bound_ms = wait_ms + 1000 * inf["upper_bound_s"]
    out = {"queue_p99_ms": 1000 * q["value_s"], "queue_p99_bucket_ms": 1000 * q["upper_bound_s"],
           "inference_p99_ms": 1000 * inf["value_s"], "inference_p99_bucket_ms": 1000 * inf["upper_bound_s"],
           "bound_ms": bound_ms, "bound_interpolated_ms": wait_ms + 1000 * inf["value_s"]}
    out["met"] = bool(q["count"]) and not math.isnan(q["upper_bound_s"]) and 1000 * q["upper_bound_s"] <= bound_ms
    return out


def run_trickle(config: BenchConfig, requests: list[Request], log_dir: Path, provider: Provider,
                variant: str, pool: ClientPool | None = None) -> list[dict]:
    """Every (max_wait_ms setting, multiple) trickle against a fresh server per setting."""
    rows = []
    warm = min(1.0, 0.25 * config.duration_s)
    for setting in config.trickle_wait_ms:
        wait_ms = effective_wait_ms(config, setting, provider)
        server = ServerProcess.rewardserve(
            config.bundle, variant, config.threads, config.max_batch_items,
            None if setting == "auto" else wait_ms, log_dir, provider.value, name=f"trickle-wait-{setting}",
            allow_failed_parity=config.allow_failed_parity, max_batch_tokens=config.max_batch_tokens,
            processes=config.server_processes, backend=config.server_backend,
            engine=config.server_engine)
        with server.start(config.startup_timeout_s):
            for multiple, rate in rates(wait_ms, config.trickle_multiples, config.trickle_base_ms):
                spec = LoadSpec(rate_rps=rate, duration_s=config.duration_s, warmup_s=warm,
                                max_requests=config.max_requests, timeout_s=config.request_timeout_s, seed=config.seed)
                before = server.snapshot()
                result = run_one(server.target, "grpc", requests, spec, pool, server.processes)
                after = server.snapshot()
                point = {**result.summary(), **after.since(before), "setting": setting, "max_wait_ms": wait_ms,
                         "multiple": multiple, "offered_rps": rate,
                         "queue_p99": quantile(bucket_delta(after.histograms, before.histograms, QUEUE), 0.99),
                         "inference_p99": quantile(bucket_delta(after.histograms, before.histograms, INFERENCE), 0.99)}
                point.update(judge(point, wait_ms))
                logger.info("trickle wait %s ms x%g (%.0f/s): queue p99 <= %.2f ms, bound %.2f ms: %s", wait_ms,
                            multiple, rate, point["queue_p99_bucket_ms"], point["bound_ms"], point["met"])
                rows.append(point)
    return rows
