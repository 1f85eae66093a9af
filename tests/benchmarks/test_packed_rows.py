"""The packed-row comparison times each row width on arrival-order batches, beside the padded graph."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from rewardserve.benchmarks.packed_rows import main

pytest.importorskip("openvino", reason="openvino is not installed (the cpu extra: pip install 'rewardserve[cpu]')")


def test_every_row_width_and_batch_size_is_timed_beside_the_padded_graph(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--bundle", str(tiny["onnx"]), "--data", str(tiny["data"]), "--precision", "fp32",
                 "--row-tokens", "8,32", "--batch-sizes", "2,4", "--max-texts", "16", "--reps", "1",
                 "--out", str(out)]) == 0
    results = json.loads((out / "packed_rows.json").read_text())["results"]
    settings = ["padded, length-sorted", "padded", "packed, rows >= 8", "packed, rows >= 32"]
    assert [(r["batch"], r["setting"]) for r in results] == [(b, s) for b in (2, 4) for s in settings]
    assert all(r["items_per_s"] > 0 for r in results)
    table = capsys.readouterr().out
    assert "| batch | " + " | ".join(settings) + " |" in table and table.count("\n| 4 | ") == 1


def test_a_bundle_without_a_packed_graph_is_named(tiny, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny["onnx"], bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["combinations"] = [c for c in manifest["combinations"] if not c.get("packed")]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SystemExit, match=r"export recorded no packed OpenVINO fp32 graph"):
        main(["--bundle", str(bundle), "--data", str(tiny["data"]), "--precision", "fp32"])


def test_the_backend_packs_rows_of_its_row_width_with_the_same_logits(tiny, monkeypatch):
    from rewardserve.service.backends import openvino as backend_module
    from rewardserve.service.domain import Encoded
    from rewardserve.service.engine.encoding import pad_batch

    rows = []
    pack = backend_module.pack
    monkeypatch.setattr(backend_module, "pack", lambda feeds, row_tokens: rows.append(row_tokens) or pack(feeds, row_tokens))
    path = tiny["onnx"] / "model_fp32_packed.onnx"
    rng = np.random.default_rng(0)
    items = [Encoded(rng.integers(5, 90, n), np.zeros(n, np.int64), False) for n in (3, 9, 4, 12)]
    narrow = backend_module.OpenVinoBackend(path, threads=1, row_tokens=12).run(pad_batch(items, 0))
    wide = backend_module.OpenVinoBackend(path, threads=1).run(pad_batch(items, 0))
    assert rows == [12, backend_module.ROW_TOKENS]
    np.testing.assert_allclose(narrow, wide, atol=1e-4)
