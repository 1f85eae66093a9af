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


def _with_openvino_int8(tiny, tmp_path, passed: bool, failure: str = ""):
    """A copy of the tiny bundle with an OpenVINO IR as its int8 file and that combination passed or failed."""
    import shutil

    import openvino as ov
    from rewardserve.export.openvino_int8 import OPENVINO_INT8_FILE

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny["onnx"], bundle)
    ov.save_model(ov.Core().read_model(str(bundle / "model_fp32.onnx")), str(bundle / OPENVINO_INT8_FILE))
    manifest = json.loads((bundle / "manifest.json").read_text())
    rest = [c for c in manifest["combinations"] if (c["runtime"], c["precision"]) != ("openvino", "int8")]
    manifest["combinations"] = [*rest, {"runtime": "openvino", "precision": "int8", "variant": "fp32", "device": "cpu",
                                        "passed": passed, "failure": failure, "file": OPENVINO_INT8_FILE}]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


def test_openvino_int8_is_measured_only_where_it_passed_parity(tiny, tmp_path, capsys):
    pytest.importorskip("openvino")

    def why(bundle):
        return {(b, p): w for b, p, w in backend_limits.candidates("cpu", True, bundle)}[("openvino", "int8")]

    failed = _with_openvino_int8(tiny, tmp_path / "failed", False, "int8: agreement=0.9700 below minimum 0.98")
    assert why(failed) == "failed parity: int8: agreement=0.9700 below minimum 0.98"
    (failed / "model_openvino_int8.xml").unlink()
    assert why(failed).startswith("no model_openvino_int8.xml in the bundle")
    passed = _with_openvino_int8(tiny, tmp_path / "passed", True)
    assert why(passed) == ""
    (passed / "model_fp32.onnx").unlink()  # the IR alone runs
    r = _limit(capsys, {**tiny, "onnx": passed}, "openvino", "int8")
    assert r["backend"] == "openvino" and r["items_per_s"] > 0
    assert r["precision_used"] == ("bf16" if backend_limits.cpu_bf16() else "f32")


def test_a_threading_whose_logits_are_off_the_reference_is_not_timed(tiny, tmp_path):
    pytest.importorskip("openvino")
    import shutil

    import numpy as np
    from rewardserve.benchmarks.workload import Workload

    from rewardserve.files import file_sha256

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny["onnx"], bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    path = bundle / manifest["reference_logits"]["file"]
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    np.savez(path, **{**arrays, "logits": arrays["logits"] + 1.0})  # as a runtime computing other logits would
    manifest["reference_logits"]["sha256"] = file_sha256(path)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    encoded = Workload.load(bundle, tiny["data"], 8, 0).encoded
    with pytest.raises(ValueError, match=r"openvino:fp32:cpu: every threading is off the reference logits \(.*x"):
        backend_limits.openvino_limit(bundle, "fp32", encoded, [1], 0.05)
