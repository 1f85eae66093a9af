"""The OpenVINO int8 comparison runs every candidate on an exported bundle and reports each against fp32."""

from __future__ import annotations

import json

import pytest
from rewardserve.benchmarks.openvino_int8_options import main

pytest.importorskip("openvino", reason="openvino is not installed (the cpu extra: pip install 'rewardserve[cpu]')")
pytest.importorskip("nncf", reason="nncf is not installed (the export extra: pip install 'rewardserve[export]')")


def test_every_candidate_is_scored_against_fp32_on_the_same_pairs(tiny, tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"chosen": f"\n\nHuman: question {i}{' word' * i}\n\nAssistant: a helpful answer",
             "rejected": f"\n\nHuman: question {i}{' word' * i}\n\nAssistant: no"} for i in range(10)]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    assert main(["--bundle", str(tiny["onnx"]), "--data", str(pairs), "--calibration", str(pairs),
                 "--calibration-texts", "4", "--max-texts", "12", "--batch", "4", "--out", str(out)]) == 0
    results = json.loads((out / "int8_options.json").read_text())
    names = [r["model"] for r in results]
    assert names[0] == "openvino fp32 (the reference)" and names[1] in ("openvino bf16", "openvino f32")
    assert names[2:] == ["static", "static-no-smoothquant", "weights", "weights-no-dynamic"]
    assert all(r["pairs"] == 6 and r["items_per_s"] > 0 for r in results)  # the 6 whole pairs of 12 texts
    reference = results[0]
    assert "agreement" not in reference  # every other row is measured against it
    assert all(0.0 <= r["agreement"] <= 1.0 and r["max_abs_diff"] >= r["mean_abs_diff"] >= 0.0 for r in results[1:])
    table = capsys.readouterr().out
    assert table.count("\n| ") == len(results) + 1  # the header and one row per model
