"""The ratios a run is read by, and the issues' bars, computed from one run's results.

Every ratio compares systems measured in the same run at the same closed-loop point (the
reference concurrency: 64 if swept, else the largest): rewardserve against the best offline
limit over every backend and precision (:mod:`benchmarks.offline`), against its own variant's
ONNX Runtime limit, against the no-op RewardService (the load generator's ceiling), the
per-request PyTorch baselines and OpenRLHF's ``serve_rm``; plus the lone-request p50 and the
server CPU time per request (every server process, children included).

Example::

    r = ratios(results, config)["int8"]
    r["server_vs_limit"], r["server_vs_noop"], r["cpu_us_per_request"]
"""

from __future__ import annotations

import math

from rewardserve.benchmarks.config import BenchConfig

# (ratio key, threshold, "min" (value >= threshold) or "max" (value <= threshold), description)
BARS = (
    ("server_vs_limit", 0.85, "min", ">= 0.85x the best offline limit (every backend) at the reference clients "
     "(issue 13, HH; issue 12 asks >= 0.2x on the tiny bundle)"),
    ("server_vs_noop", 0.6, "min", ">= 0.6x the no-op RewardService in the same run (issue 12, tiny bundle)"),
    ("p50_at_1_ms", 2.0, "max", "lone-request p50 <= 2 ms (issue 12, tiny bundle)"),
    ("cpu_us_per_request", 400.0, "max", "server CPU per single-item request <= 400 us (issue 12, tiny bundle)"),
    ("http_vs_serve_rm", 2.5, "min", "/get_reward >= 2.5x OpenRLHF serve_rm, same HTTP client (issue 13)"),
    ("http_vs_torch_bf16", 2.5, "min", "/get_reward >= 2.5x the bf16 per-request PyTorch server (issue 13)"),
    ("server_vs_torch", 2.5, "min", ">= 2.5x the per-request PyTorch fp32 server at 64 clients (bar: default variant)"),
    ("padding_efficiency", 0.85, "min", "padding efficiency >= 0.85 at 64 clients"),
    ("open_p99_vs_p50_at_1", 5.0, "max", "open loop at half peak: p99 <= 5x the p50 at one client"),
)


def at(points: list[dict], concurrency: int) -> dict | None:
    """The point of ``points`` at ``concurrency`` clients."""
    return next((p for p in points if p["concurrency"] == concurrency), None)


def _div(a, b) -> float:
    return a / b if a is not None and b else math.nan


def cpu_us_per_request(point: dict | None) -> float:
    """Server CPU microseconds per request handled during the point (warm-up and drain included)."""
    if not point or not point.get("handled"):
        return math.nan
    return 1e6 * point.get("server_cpu_s", math.nan) / point["handled"]


def limit_items_per_s(variant_results: dict) -> float:
    """The better of the ONNX Runtime limit measured before and after the sweep."""
    recheck = variant_results.get("limit_recheck", {}).get("items_per_s", 0.0)
    return max(variant_results["limit"]["items_per_s"], recheck)


def _items(system: dict | None, mode: str, concurrency: int) -> float | None:
    p = at(system.get(mode, []), concurrency) if system else None
    return p["items_per_s"] if p else None


def ratios(results: dict, config: BenchConfig) -> dict:
    """Per served variant: every ratio of the run at the reference concurrency."""
    ref = config.reference_concurrency
    systems = results["systems"]
    best = (results.get("offline") or {}).get("best") or {}
    out = {}
    for variant, v in results["variants"].items():
        served = v["rewardserve"]
        on, http = at(served["closed"], ref), at(served.get("http", []), ref)
        if on is None and http is None:
            continue
        own = limit_items_per_s(v)
        limit = max(own, best.get("items_per_s", 0.0))
        r = {"at_concurrency": ref, "limit_items_per_s": limit, "served": served.get("served"),
             "limit_name": best["name"] if best.get("items_per_s", 0) > own else f"onnxruntime {v['limit']['variant']}"}
        if on:
            r.update(_grpc_ratios(on, served, limit, own, systems, ref))
            if "rewardserve_nobatch" in v:
                r["batching_on_vs_off"] = _div(on["items_per_s"], _items(v["rewardserve_nobatch"], "closed", ref))
        if http:
            r.update(http_items_per_s=http["items_per_s"], http_cpu_us_per_request=cpu_us_per_request(http),
                     http_vs_limit=http["items_per_s"] / limit,
                     http_vs_noop=_div(http["items_per_s"], _items(systems.get("noop"), "http", ref)),
                     http_vs_serve_rm=_div(http["items_per_s"], _items(systems.get("openrlhf-serve_rm"), "http", ref)),
                     http_vs_litserve=_div(http["items_per_s"], _items(systems.get("litserve"), "http", ref)),
                     http_vs_torch_bf16=_div(http["items_per_s"], _items(systems.get("torch-bf16"), "closed", ref)))
            one = at(served["http"], 1)
            r["http_p50_at_1_ms"] = one["p50_ms"] if one else None
        out[variant] = r
    return out


def _grpc_ratios(on: dict, served: dict, limit: float, own: float, systems: dict, ref: int) -> dict:
    r = {"items_per_s": on["items_per_s"], "server_vs_limit": on["items_per_s"] / limit,
         "server_vs_own_ort_limit": on["items_per_s"] / own,
         "peak_vs_limit": max(p["items_per_s"] for p in served["closed"]) / limit,
         "padding_efficiency": on.get("padding_efficiency"), "mean_batch_size": on.get("mean_batch_size"),
         "cpu_us_per_request": cpu_us_per_request(on),
         "server_vs_noop": _div(on["items_per_s"], _items(systems.get("noop"), "closed", ref)),
         "noop_cpu_us_per_request": cpu_us_per_request(at(systems.get("noop", {}).get("closed", []), ref))}
    for dtype in ("fp32", "bf16", "fp16"):
        t = _items(systems.get(f"torch-{dtype}"), "closed", ref)
        if t is not None:
            r["server_vs_torch" + ("" if dtype == "fp32" else f"_{dtype}")] = _div(on["items_per_s"], t)
    one = at(served["closed"], 1)
    if one:
        r["p50_at_1_ms"] = one["p50_ms"]
    half = next((p for p in served["open"] if p["fraction_of_peak"] == 0.5), None)
    if one and half:
        r["open_half_peak_p99_ms"] = half["p99_ms"]
        r["open_p99_vs_p50_at_1"] = half["p99_ms"] / one["p50_ms"]
    return r


def bars(ratio: dict, default: str) -> list[dict]:
    """The issues' bars, each met or not, with the number behind it."""
    rows = []
    for key, threshold, kind, text in BARS:
        for variant in ratio:
            value = ratio.get(variant, {}).get(key)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            met = value <= threshold if kind == "max" else value >= threshold
            rows.append({"bar": text, "variant": variant, "default_variant": variant == default, "value": value,
                         "threshold": threshold, "met": met})
    return rows
