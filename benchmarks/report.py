"""Benchmark results as files: ``results.json`` (every number), ``results.md`` (tables, ratios) and PNG plots.

Example::

    write_report(results, Path("results/cpu"))  # results.json, results.md, *.png
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from rewardserve.benchmarks.report_tables import offline_table, side_by_side, skipped_table, trickle_table

PLOTS = ("throughput_vs_concurrency.png", "latency_vs_load.png", "latency_distribution.png")


def write_report(results: dict, out: Path) -> list[Path]:
    """Write the JSON, Markdown and plots; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "results.md"]
    paths[0].write_text(json.dumps(results, indent=1, default=_jsonable) + "\n")
    paths[1].write_text(markdown(results))
    if results["variants"] or results["systems"]:  # a trickle-only run has nothing to plot
        paths += plot_all(results, out)
    return paths


def _jsonable(x):
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    return str(x)


def systems(results: dict) -> Iterator[tuple[str, dict]]:
    """(label, system results) of every server measured, in report order."""
    for variant, v in results["variants"].items():
        yield f"rewardserve {variant}", v["rewardserve"]
        if "rewardserve_nobatch" in v:
            yield f"rewardserve {variant} batch 1", v["rewardserve_nobatch"]
    for name, s in results["systems"].items():
        label = name.replace("-", " ")
        yield (f"{label} per-request" if name.startswith("torch") else label), s


def _f(x, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{digits}f}"


def markdown(results: dict) -> str:
    """The results as Markdown: ratios and bars first, then every point."""
    env, w = results["environment"], results["workload"]
    lines = [
        "# rewardserve benchmark", "",
        f"{env['cpu']} ({env['logical_cpus']} logical CPUs), threads setting {env['threads']} (0: auto; rewardserve "
        f"auto on CPU = one 1-thread inference worker per core; torch: its default); load average at start {', '.join(f'{x:.1f}' for x in env['load_average_at_start'])}. "
        f"Texts: {w['n_texts']} from `{w['source']}`, {w['tokens_mean']:.0f} tokens on average "
        f"(p90 {w['tokens_p90']:.0f}, max {w['tokens_max']}, {100 * w['truncated_fraction']:.0f}% truncated). "
        f"Default CPU variant: {results['default_variant']}. Server and load generator share the machine.", "",
        *side_by_side(results), *trickle_table(results), *skipped_table(results),
    ]
    if not results["variants"] and not results["systems"]:
        return "\n".join(lines)
    lines += [
        "## Ratios (measured in the same run)", "",
        "| variant | at clients | items/s | server / limit (best offline) | peak / limit | server / per-request torch fp32 "
        "| batching on / off | padding eff. | mean batch | open-loop p99 at half peak / p50 at 1 client |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for variant, r in results["ratios"].items():
        lines.append(
            f"| {variant} | {r['at_concurrency']} | {_f(r.get('items_per_s'))} | {_f(r.get('server_vs_limit'), 2)} "
            f"| {_f(r.get('peak_vs_limit'), 2)} | {_f(r.get('server_vs_torch'), 2)} | {_f(r.get('batching_on_vs_off'), 2)} "
            f"| {_f(r.get('padding_efficiency'), 3)} | {_f(r.get('mean_batch_size'))} | {_f(r.get('open_p99_vs_p50_at_1'), 2)} |")
    if results.get("bars"):
        lines += ["", "## Bars", "", "| bar | variant | value | met |", "|---|---|---:|---|"]
        for b in results["bars"]:
            variant = b["variant"] + (" (default)" if b.get("default_variant") else "")
            lines.append(f"| {b['bar']} | {variant} | {_f(b['value'], 2)} | {'yes' if b['met'] else 'NO'} |")
    lines += ["", *offline_table(results), "## Limit: raw ONNX Runtime offline, length-sorted, best batch size", "",
              "| variant | provider | workers x threads | best batch | items/s | items/s after the sweep | tokens/s "
              "| padding eff. | items/s by batch size | other threading tried |",
              "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for variant, v in results["variants"].items():
        lim = v["limit"]
        recheck = v.get("limit_recheck", {}).get("items_per_s")
        sizes = ", ".join(f"{k}: {_f(b['items_per_s'])}" for k, b in lim["by_batch_size"].items())
        others = "; ".join(f"{a['workers']} x {a['threads']}: {_f(a['items_per_s'])} (batch {a['best_batch_size']})"
                           for a in lim.get("alternatives", []) if a["workers"] != lim.get("workers", 1))
        lines.append(f"| {variant} | {lim['provider']} | {lim.get('workers', 1)} x {lim['threads']} "
                     f"| {lim['best_batch_size']} | {_f(lim['items_per_s'])} | {_f(recheck)} | {_f(lim['tokens_per_s'], 0)} "
                     f"| {_f(lim['padding_efficiency'], 3)} | {sizes} | {others or '-'} |")
    lines += ["", "## Closed loop", "", *_point_table(results, "closed"), "",
              "## Open loop (Poisson arrivals; latency from the scheduled arrival)", "",
              *_point_table(results, "open"), "",
              "## Closed loop over HTTP (OpenRLHF's client: one query per POST, a new connection each)", "",
              *_point_table(results, "http"), ""]
    return "\n".join(lines)


def _point_table(results: dict, mode: str) -> list[str]:
    load = "offered items/s" if mode == "open" else "clients"
    rows = [f"| system | {load} | items/s | tokens/s | p50 ms | p90 ms | p99 ms | max ms | mean batch "
            "| padding eff. | server CPU cores | client CPU cores | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for label, s in systems(results):
        for p in s.get(mode, []):
            x = _f(p["offered_items_per_s"]) if mode == "open" else p["concurrency"]
            errors = ", ".join(f"{k} {v}" for k, v in p["errors"].items()) or "0"
            rows.append(f"| {label} | {x} | {_f(p['items_per_s'])} | {_f(p['tokens_per_s'], 0)} | {_f(p['p50_ms'])} "
                        f"| {_f(p['p90_ms'])} | {_f(p['p99_ms'])} | {_f(p['max_ms'])} | {_f(p.get('mean_batch_size'))} "
                        f"| {_f(p.get('padding_efficiency'), 3)} | {_f(p['server_cpu_cores'], 2)} "
                        f"| {_f(p['client_cpu_cores'], 2)} | {errors} |")
    return rows if len(rows) > 2 else ["(none)"]


def plot_all(results: dict, out: Path) -> list[Path]:
    """Throughput against concurrency, latency against offered load, latency distribution at one load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = [out / name for name in PLOTS]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (label, s) in enumerate(systems(results)):
        for mode, style, suffix in (("closed", "o-", ""), ("http", "s:", " (HTTP)")):
            pts = s.get(mode, [])
            if pts:
                ax.plot([p["concurrency"] for p in pts], [p["items_per_s"] for p in pts], style, label=label + suffix,
                        color=f"C{i % 10}")
    best = (results.get("offline") or {}).get("best")
    if best:
        ax.axhline(best["items_per_s"], ls="-.", lw=1, color="k", label=f"best offline: {best['name']}")
    for j, (variant, v) in enumerate(results["variants"].items()):
        ax.axhline(max(v["limit"]["items_per_s"], v.get("limit_recheck", {}).get("items_per_s", 0.0)),
                   ls="--", lw=1, color=f"C{7 + j}",
                   label=f"limit {variant} (ORT offline, batch {v['limit']['best_batch_size']})")
    ax.set(xscale="log", xlabel="concurrent clients (closed loop)", ylabel="items/s",
           title="Throughput against concurrency")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (variant, v) in enumerate(results["variants"].items()):
        pts = sorted(v["rewardserve"]["open"], key=lambda p: p["offered_items_per_s"])
        if not pts:
            continue
        x = [p["offered_items_per_s"] for p in pts]
        for q, style in (("p50", "o-"), ("p90", "s--"), ("p99", "^:")):
            ax.plot(x, [p[f"{q}_ms"] for p in pts], style, color=f"C{i}", label=f"{variant} {q}")
        one = next((p for p in v["rewardserve"]["closed"] if p["concurrency"] == 1), None)
        if one and pts:  # the bar: p99 at half of peak within 5x the p50 of a lone client
            ax.axhline(5 * one["p50_ms"], ls="-.", lw=0.8, color=f"C{i}", label=f"{variant} 5 x p50 at 1 client")
    ax.set(yscale="log" if ax.lines else "linear", xlabel="offered load (items/s, Poisson)", ylabel="latency (ms)",
           title="rewardserve latency percentiles against offered load (open loop)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)

    conc = results["config"]["distribution_concurrency"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (label, s) in enumerate(systems(results)):
        lat = next((p.get("latencies_ms") for p in s["closed"] if p["concurrency"] == conc), None)
        if lat:
            xs = np.sort(lat)
            ax.plot(xs, np.arange(1, len(xs) + 1) / len(xs), color=f"C{i}", label=label)
    ax.set(xscale="log" if ax.lines else "linear", xlabel="latency (ms)", ylabel="fraction of requests",
           title=f"Latency distribution at {conc} concurrent clients (CDF)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(paths[2], dpi=110)
    plt.close(fig)
    return paths
