"""Offline limits of the other runtimes on the tiny bundle: each runs and reports its best batch size."""

from __future__ import annotations

import json
import os

import pytest
from rewardserve.benchmarks import backend_limits


def _limit(capsys, tiny, *argv: str) -> dict:
    assert backend_limits.main([*argv, "--bundle", str(tiny["onnx"]), "--source-bundle", str(tiny["source"]),
                                "--data", str(tiny["data"]), "--max-texts", "8", "--batch-sizes", "1,4",
                                "--min-time-s", "0.05"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_openvino_fp32_limit(tiny, capsys):
    pytest.importorskip("openvino")
    r = _limit(capsys, tiny, "openvino", "fp32")
    assert r["best_batch_size"] in (1, 4) and r["precision_used"] == "f32"
    assert r["items_per_s"] == max(b["items_per_s"] for b in r["by_batch_size"].values()) > 0
    cores = os.cpu_count() or 1
    assert {(a["workers"], a["threads"]) for a in r["alternatives"]} == {(cores, 1), (1, cores)}


def test_openvino_packed_limit_runs_the_packed_graph(tiny, capsys):
    pytest.importorskip("openvino")
    r = _limit(capsys, tiny, "openvino-packed", "fp32")
    assert r["backend"] == "openvino-packed" and r["precision_used"] == "f32" and r["items_per_s"] > 0
    rows = {(b, p) for b, p, _ in backend_limits.candidates("cpu", True, tiny["onnx"])}
    assert {("openvino-packed", "fp32"), ("openvino-packed", "bf16")} <= rows  # the tiny BERT bundle has one


def test_torch_fp32_limit_with_sdpa(tiny, capsys):
    r = _limit(capsys, tiny, "torch", "fp32")
    assert r["attention"] == "sdpa" and r["n_items"] == 8 and r["items_per_s"] > 0


def test_candidates_name_why_they_cannot_run():
    rows = {(b, p): why for b, p, why in backend_limits.candidates("cpu", have_source=False)}
    assert rows[("torch", "fp32")].startswith("no --source-bundle")
    assert ("openvino", "bf16") in rows and ("torch", "bf16") in rows
    assert not any(b == "openvino-packed" for b, _ in rows)  # no bundle named: no packed graph to run
    assert [(b, p) for b, p, _ in backend_limits.candidates("cuda", True)] == [("torch", "fp32"), ("torch", "fp16")]
