"""The report's tables for the side-by-side ratios, every offline limit, and the trickle check."""

from __future__ import annotations

import math


def f(x, digits: int = 1) -> str:
    """A number for a Markdown cell ('-' for none or NaN)."""
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return "-" if x is None or math.isnan(x) else "inf"
    return f"{x:,.{digits}f}"


def side_by_side(results: dict) -> list[str]:
    """Issue 12's ratios in one row per variant and protocol: server / limit, / no-op, lone p50, CPU per request."""
    if not results.get("ratios"):
        return []
    env = results["environment"]
    lines = ["## Side by side (same run)", "",
             f"Load generator: {env.get('client_procs', 1)} process(es); server processes setting "
             f"{env.get('server_processes', 0)} (0: the server's default), engine {env.get('server_engine', 'auto')}. "
             "CPU per request: server CPU time (psutil, "
             "every process of the server, children included) / requests it answered during the point.", "",
             "| variant | protocol | clients | items/s | limit (best offline) | server / limit | server / no-op "
             "| lone-request p50 ms | server CPU us / request | no-op CPU us / request |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for name, r in results["ratios"].items():
        served = r.get("served") or {}
        variant = f"{name} ({served['execution_provider']}, {served['precision']})" if served else name
        limit = f"{r['limit_name']}: {f(r['limit_items_per_s'])}"
        if "items_per_s" in r:
            lines.append(f"| {variant} | gRPC | {r['at_concurrency']} | {f(r['items_per_s'])} | {limit} "
                         f"| {f(r['server_vs_limit'], 2)} | {f(r.get('server_vs_noop'), 2)} | {f(r.get('p50_at_1_ms'), 2)} "
                     f"| {f(r.get('cpu_us_per_request'), 0)} | {f(r.get('noop_cpu_us_per_request'), 0)} |")
        if "http_items_per_s" in r:
            lines.append(f"| {variant} | HTTP /get_reward (new connection per request) | {r['at_concurrency']} "
                         f"| {f(r['http_items_per_s'])} | {limit} | {f(r['http_vs_limit'], 2)} "
                         f"| {f(r.get('http_vs_noop'), 2)} | {f(r.get('http_p50_at_1_ms'), 2)} "
                         f"| {f(r.get('http_cpu_us_per_request'), 0)} | - |")
    peers = [(k, label) for k, label in (("server_vs_torch", "gRPC / torch fp32 per-request"),
                                         ("server_vs_torch_bf16", "gRPC / torch bf16 per-request"),
                                         ("http_vs_torch_bf16", "/get_reward / torch bf16 per-request"),
                                         ("http_vs_serve_rm", "/get_reward / OpenRLHF serve_rm"),
                                         ("http_vs_litserve", "/get_reward / LitServe (same ONNX file)"))
             if any(isinstance(r.get(k), float) and math.isfinite(r[k]) for r in results["ratios"].values())]
    if peers:
        lines += ["", "| variant | " + " | ".join(label for _, label in peers) + " |",
                  "|---|" + "---:|" * len(peers)]
        for variant, r in results["ratios"].items():
            lines.append(f"| {variant} | " + " | ".join(f(r.get(k), 2) for k, _ in peers) + " |")
    return [*lines, ""]


def offline_table(results: dict) -> list[str]:
    """Every offline limit measured (best first) and what could not run here."""
    offline = results.get("offline")
    if not offline:
        return []
    lines = ["## Offline limits: every backend and precision installed (best first)", "",
             "Pre-tokenized by the server's encoder, length-sorted, best batch size; the best row is the limit.", "",
             "| backend / precision | workers x threads | best batch | items/s | tokens/s | items/s by batch size "
             "| notes |", "|---|---:|---:|---:|---:|---|---|"]
    for r in offline["rows"]:
        sizes = ", ".join(f"{k}: {f(b['items_per_s'])}" for k, b in r.get("by_batch_size", {}).items())
        notes = "; ".join(f"{k} {r[k]}" for k in ("provider", "precision_used", "attention", "version") if r.get(k))
        lines.append(f"| {r['name']} | {r.get('workers', 1)} x {r.get('threads', '-')} | {r['best_batch_size']} "
                     f"| {f(r['items_per_s'])} | {f(r.get('tokens_per_s'), 0)} | {sizes} | {notes or '-'} |")
    return [*lines, ""]


def skipped_table(results: dict) -> list[str]:
    """Systems and limits that did not run, with the reason."""
    if not results.get("skipped"):
        return []
    return ["## Not measured in this run", "", *(f"- {s['name']}: {s['reason']}" for s in results["skipped"]), ""]


def trickle_table(results: dict) -> list[str]:
    """The trickle check: queue p99 against max_wait_ms + one batch's inference p99, from the server's histograms."""
    rows = results.get("trickle")
    if not rows:
        return []
    lines = ["## Trickle: is max_wait_ms a bound? (open loop, single items; p99s from the server's histograms)", "",
             "p99s are Prometheus-style interpolations inside the histogram buckets; the bar is judged on the "
             "buckets' upper bounds ('<=').", "",
             "| max_wait_ms | x 1/max_wait | offered req/s | answered items/s | queue p99 ms | inference p99 ms "
             "| bound: wait + inference p99 ms | met | mean batch | client p99 ms | errors |",
             "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|"]
    for r in rows:
        wait = f"{f(r['max_wait_ms'], 1)}" + (" (default)" if r["setting"] == "auto" else "")
        errors = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "0"
        lines.append(
            f"| {wait} | {f(r['multiple'], 0)} | {f(r['offered_rps'], 0)} | {f(r['items_per_s'])} "
            f"| {f(r['queue_p99_ms'], 2)} (<= {f(r['queue_p99_bucket_ms'], 2)}) "
            f"| {f(r['inference_p99_ms'], 2)} (<= {f(r['inference_p99_bucket_ms'], 2)}) "
            f"| {f(r['bound_ms'], 2)} | {'yes' if r['met'] else 'NO'} | {f(r.get('mean_batch_size'))} "
            f"| {f(r['p99_ms'], 2)} | {errors} |")
    return [*lines, ""]
