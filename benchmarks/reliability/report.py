"""The reliability report: one table of every scenario's figures and checks; JSON and Markdown.

Example::

    write_report(results, Path("benchmarks/results/reliability"))   # results.json, results.md
    print(table(results))
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Row = tuple[str, Callable[[dict], Any]]


def _codes(d: dict | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted((d or {}).items())) or "none"


def _count(f: dict, ok: Callable[[dict], bool]) -> str:
    return f"{sum(1 for v in f['kinds'].values() if ok(v))}/{len(f['kinds'])}"


def _ms(x) -> str:
    return "-" if x is None else f"{x:.1f} ms"


# Per section: the figures that go in the table (label, how to read it from the figures).
ROWS: dict[str, list[Row]] = {
    "soak": [
        ("load", lambda f: f"{f['clients']} clients x {f['duration_s']} s, models {'+'.join(f['models'])}, "
                           f"1-16 items/request, {f['streamed']} of {f['sent']} requests streamed"),
        ("requests sent / answered", lambda f: f"{f['sent']} / {f['answered']} ({f['items_answered']} items, "
                                               f"{f['requests_per_s']} req/s)"),
        ("failed by code", lambda f: _codes(f["failed_by_code"])),
        ("lost / misrouted", lambda f: f"{f['lost']} / {f['misrouted']} (solo-score tolerance {f['tolerance']:g})"),
        ("server RSS ready -> after warm-up -> end (peak)",
         lambda f: f"{f['rss_ready_mib']} -> {f['rss_after_warmup_mib']} -> {f['rss_end_mib']} MiB "
                   f"({f['rss_peak_mib']}); growth {f['rss_growth_mib']} MiB"),
    ],
    "cancellation": [
        ("one batch window: live / cancelled / expired", lambda f: f"{f['codes'].get('OK', 0)} / "
         f"{f['codes'].get('CANCELLED', 0)} / {f['codes'].get('DEADLINE_EXCEEDED', 0)} requests"),
        ("items sent / reached the runner / dropped", lambda f: f"{f['items_sent']} / {f['items_run']} "
         f"(live {f['items_live']}, {f['batches']} batch) / {f['items_dropped']}"),
    ],
    "overload": [
        ("queue / overload clients", lambda f: f"{f['queue_items']} items / {f['overload']['clients']} x "
                                               f"{f['overload']['items_per_request']} items"),
        ("RESOURCE_EXHAUSTED latency p50 / p99 / max", lambda f: f"{_ms(f['overload']['rejected_p50_ms'])} / "
         f"{_ms(f['overload']['rejected_p99_ms'])} / {_ms(f['overload']['rejected_max_ms'])} "
         f"({f['overload']['rejected']} rejected; served p50 {_ms(f['overload']['ok_p50_ms'])})"),
        ("items/s before / during / after", lambda f: f"{f['normal']['items_per_s']} / {f['overload']['items_per_s']}"
         f" / {f['normal_again']['items_per_s']} (recovery {f['recovery_ratio']}x)"),
    ],
    "SIGTERM under load": [
        ("client outcomes", lambda f: _codes(f["by_outcome"])),
        ("server Score calls by code", lambda f: _codes(f["server_score_calls"])),
        ("in flight at the signal, answered", lambda f: f["answered_in_flight_at_signal"]),
        ("health / exit", lambda f: f"{' -> '.join(f['health_statuses'])}; exit {f['exit_code']} after "
                                    f"{f['exit_s']} s (grace {f['grace_period_s']:g} s)"),
    ],
    "injected runner failure": [
        ("batches / failed batch items", lambda f: f"{f['batches']} / {f['failed_batch_items']}"),
        ("requests INTERNAL / OK / later OK", lambda f: f"{f['requests_internal']} / {f['requests_ok']} / "
                                                        f"{f['later_ok']}"),
    ],
    "bad models": [
        ("kinds", lambda f: ", ".join(f["kinds"])),
        ("fail: exit 2, stderr names file + problem", lambda f: f"{_count(f, lambda v: v['fail: exit'] == 2)} kinds"),
        ("skip: healthy model served; broken ones NOT_FOUND + logged",
         lambda f: f"{_count(f, lambda v: v.get('skip: GetModel') == 'NOT_FOUND' and v.get('skip: logged'))} kinds; "
                   f"every model broken: exit {f['skip_all_broken_exit']}"),
    ],
    "bad input": [
        ("generated requests (hypothesis)", lambda f: f"{f['requests_sent']} in {f.get('seconds', '-')} s"),
        ("answers by code", lambda f: _codes(f["by_code"])),
    ],
}


def _value(fn: Callable[[dict], Any], figures: dict) -> str:
    try:
        return str(fn(figures))
    except (KeyError, TypeError, ValueError):  # a scenario that crashed has no figures
        return "-"


def rows(results: dict) -> list[tuple[str, str, str, str]]:
    """(scenario, figure, value, checks) rows, one block per scenario."""
    out = []
    for s in results["sections"]:
        passed = sum(c["ok"] for c in s["checks"])
        verdict = f"{'PASS' if s['ok'] else 'FAIL'} {passed}/{len(s['checks'])}"
        for i, (label, fn) in enumerate(ROWS.get(s["name"], [])):
            out.append((s["name"] if i == 0 else "", label, _value(fn, s["figures"]), verdict if i == 0 else ""))
    return out


def table(results: dict) -> str:
    """The one table, as plain text for a terminal."""
    body = rows(results)
    widths = [max(len(r[i]) for r in [("scenario", "figure", "value", "checks"), *body]) for i in range(4)]
    widths[2] = min(widths[2], 110)
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(("scenario", "figure", "value", "checks")), "  ".join("-" * w for w in widths),
                      *map(line, body), "", *failures(results)])


def failures(results: dict) -> list[str]:
    """One line per failed check (none when everything passed)."""
    bad = [f"FAILED{'' if c.get('gated', True) else ' (timing, reported only)'} {s['name']}: {c['name']}: "
           f"{c['detail']}" for s in results["sections"] for c in s["checks"] if not c["ok"]]
    return bad or [f"all {sum(len(s['checks']) for s in results['sections'])} checks passed"]


def markdown(results: dict) -> str:
    """The table, the failed checks and the settings, as Markdown."""
    out = ["# Reliability", "", f"`{results['command']}` on {results['environment']['machine']}, "
           f"{results['environment']['started']}, {results['seconds']:.0f} s.", "",
           "| scenario | figure | value | checks |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c.replace('|', '/')} | {d} |" for a, b, c, d in rows(results)]
    out += ["", *(f"- {x}" for x in failures(results)), "", "Every check:", ""]
    for s in results["sections"]:
        out += [f"- **{s['name']}**: " + "; ".join(f"{'ok' if c['ok'] else 'FAILED'} {c['name']} ({c['detail']})"
                                                   for c in s["checks"])]
    return "\n".join(out) + "\n"


def write_report(results: dict, out: Path) -> list[Path]:
    """Write ``results.json`` and ``results.md`` into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "results.md"]
    paths[0].write_text(json.dumps(results, indent=2, default=str) + "\n")
    paths[1].write_text(markdown(results))
    return paths
