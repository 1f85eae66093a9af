"""Shared fixtures: a tiny pairwise model bundle, its fp32 ONNX export and a small workload."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA

HH_DEV = SHARED_DATA / "hh-rlhf-harmless" / "dev.jsonl"


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """``{"source": model bundle, "onnx": its fp32 ONNX bundle, "data": a texts file}``."""
    from rewardserve.export.config import ExportConfig
    from rewardserve.export.pipeline import export_bundle
    from rewardserve.training.tiny import make_tiny_bundle

    root = tmp_path_factory.mktemp("bench")
    source = make_tiny_bundle(root / "pairwise", "bert", "pairwise")
    onnx = root / "pairwise-onnx"
    export_bundle(ExportConfig(bundle=source, out=onnx, precisions=("fp32",), throughput=False, max_texts=8,
                               parity_batch_size=4, builtin_texts=True))
    data = HH_DEV
    if not data.is_file():  # CI without the shared data: a few HH-style dialogues of mixed lengths
        data = root / "texts.jsonl"
        rows = [{"text": "\n\nHuman: question " + "word " * (3 * i) + "\n\nAssistant: answer"} for i in range(40)]
        data.write_text("".join(__import__("json").dumps(r) + "\n" for r in rows))
    return {"source": source, "onnx": onnx, "data": data}


@pytest.fixture(scope="session")
def workload(tiny):
    """32 texts tokenized by the tiny model."""
    from rewardserve.benchmarks.workload import Workload

    return Workload.load(tiny["onnx"], tiny["data"], max_texts=32, seed=0)
