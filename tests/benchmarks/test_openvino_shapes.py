"""The OpenVINO shape and spin probe runs on an exported bundle and prints both figures."""

from __future__ import annotations

import pytest
from rewardserve.benchmarks.openvino_shapes import main

pytest.importorskip("openvino", reason="openvino is not installed (the cpu extra: pip install 'rewardserve[cpu]')")


def test_the_probe_reports_new_shape_cost_and_cpu_against_wall_time(tiny, capsys):
    assert main(["--bundle", str(tiny["onnx"]), "--precision", "fp32"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("272 shapes: ") and "for a new shape" in out[0]
    gaps = [line.split(", ")[1].split(":")[0] for line in out[1:]]
    assert gaps == ["0 ms between calls", "2 ms between calls", "10 ms between calls"]
    assert all(line.endswith("ms wall a call") for line in out[1:])
