"""A whole (tiny, quick) benchmark run through the CLI: every system answered, every file written."""

from __future__ import annotations

import json
import math

import pytest
from rewardserve.benchmarks.report import PLOTS

from rewardserve.cli import main

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def results(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    code = main(["bench", "--bundle", str(tiny["onnx"]), "--source-bundle", str(tiny["source"]),
                 "--data", str(tiny["data"]), "--variants", "fp32", "--quick", "--concurrency", "1,4",
                 "--duration-s", "0.8", "--max-texts", "32", "--threads", "1", "--distribution-concurrency", "4",
                 "--protocols", "grpc,http", "--client-procs", "2", "--torch-dtypes", "fp32", "--serve-rm", "off",
                 "--litserve", "off", "--no-other-backends", "--out", str(out)])
    assert code == 0
    return out, json.loads((out / "results.json").read_text())


def test_writes_json_markdown_and_plots(results):
    out, r = results
    for name in ("results.json", "results.md", *PLOTS):
        assert (out / name).stat().st_size > 0, name
    md = (out / "results.md").read_text()
    assert "Side by side" in md and "server / no-op" in md and "Closed loop over HTTP" in md
    assert "server / limit" in md and "rewardserve fp32 batch 1" in md and "torch fp32 per-request" in md
    assert r["environment"]["threads"] == 1 and r["environment"]["versions"]["onnxruntime"]


def test_every_request_of_every_system_is_answered(results):
    _, r = results
    v = r["variants"]["fp32"]
    systems = [v["rewardserve"], v["rewardserve_nobatch"], r["systems"]["torch-fp32"], r["systems"]["noop"]]
    points = [p for s in systems for p in s["closed"] + s["open"] + s["http"]]
    # two closed gRPC points each, one open point (quick: half of peak), two HTTP points (rewardserve, no-op)
    assert len(points) == 2 + 1 + 2 + 2 + 2 + 2 + 2
    for p in points:
        assert p["error_count"] == 0 and p["requests"] > 0 and p["items_per_s"] > 0
    assert all(p["mean_batch_size"] == 1 for p in v["rewardserve_nobatch"]["closed"])
    assert "latencies_ms" in v["rewardserve"]["closed"][1]  # the distribution point (4 clients)
    # two client processes, but never more than there are clients
    assert all(p["client_procs"] == (2 if p["mode"] == "open" else min(2, p["concurrency"])) for p in points)
    assert all(p["handled"] >= p["requests"] for p in points)


def test_ratios_and_bars_are_computed(results):
    _, r = results
    ratio = r["ratios"]["fp32"]
    for key in ("server_vs_limit", "server_vs_torch", "batching_on_vs_off", "open_p99_vs_p50_at_1"):
        assert math.isfinite(ratio[key]) and ratio[key] > 0, key
    for key in ("server_vs_noop", "http_vs_noop", "cpu_us_per_request", "http_cpu_us_per_request",
                "noop_cpu_us_per_request", "p50_at_1_ms"):
        assert math.isfinite(ratio[key]) and ratio[key] > 0, key
    assert ratio["at_concurrency"] == 4  # 64 is not in the sweep: the largest point stands in
    assert ratio["served"]["precision"] == "fp32" and ratio["served"]["execution_provider"]  # from GetModel
    assert ratio["limit_name"] == "onnxruntime fp32" and ratio["server_vs_limit"] == ratio["server_vs_own_ort_limit"]
    skipped = {s["name"]: s["reason"] for s in r["skipped"]}
    assert skipped["openrlhf serve_rm"] == skipped["litserve"] == "off" and "openvino fp32" in skipped
    assert {b["bar"] for b in r["bars"]} and all(isinstance(b["met"], bool) for b in r["bars"])
