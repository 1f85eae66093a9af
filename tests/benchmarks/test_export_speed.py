"""export_speed: the CPU clock on a tiny bundle, and the refused cuda + cpu-clock combination."""

from __future__ import annotations

import json

from rewardserve.benchmarks import export_speed


def test_cpu_clock_refuses_cuda(tmp_path, capsys):
    assert export_speed.main([str(tmp_path), "--provider", "cuda", "--clock", "cpu"]) == 2
    assert "--clock cpu measures CPU execution only" in capsys.readouterr().err


def test_cpu_clock_ratios(tiny, tmp_path):
    out = tmp_path / "speed.json"
    assert export_speed.main([str(tiny["onnx"]), "--clock", "cpu", "--rounds", "2", "--min-time-s", "0.05",
                              "--batch-size", "2", "--seq-len", "8", "--out", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert results["fp32_unoptimized"]["ratio_vs_baseline"] == 1.0
    assert all(r["clock"] == "cpu" and r["sequences_per_s"] > 0 for r in results.values())
