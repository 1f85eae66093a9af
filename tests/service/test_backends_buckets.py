"""Sequence-length buckets for backends that ask for bounded shapes (CUDA): padding, warm-up, metrics."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from rewardserve.service.backends import runtimes
from rewardserve.service.domain import Encoded, ScoreOptions
from rewardserve.service.engine.encoding import buckets, pad_batch, padded_length
from rewardserve.service.engine.models import ScoringModel
from rewardserve.service.metrics import ServiceMetrics

from rewardserve.formatting import TextItem

from .conftest import make_config


def _item(n: int) -> Encoded:
    return Encoded(np.arange(1, n + 1, dtype=np.int64), np.zeros(n, np.int64), False)


def test_lengths_round_up_to_a_bucket_never_past_max_length():
    assert padded_length(20) == 20 and padded_length(20, 1) == 20  # no buckets
    assert padded_length(20, 16, 64) == 32 and padded_length(32, 16, 64) == 32
    assert padded_length(60, 32, 100) == 64 and padded_length(99, 32, 100) == 100  # the last bucket is max_length
    assert buckets(32, 100) == [32, 64, 96, 100] and buckets(16, 64) == [16, 32, 48, 64] and buckets(0, 64) == [64]


def test_pad_batch_to_a_bucket_keeps_masks_and_positions_right():
    feed = pad_batch([_item(3), _item(20)], pad_id=0, multiple=16, max_length=64)
    assert feed["input_ids"].shape == (2, 32)
    assert feed["attention_mask"].sum(axis=1).tolist() == [3, 20]
    assert feed["input_ids"][0, 3:].tolist() == [0] * 29
    assert feed["position_ids"][1, :20].tolist() == list(range(20))


class Recording:
    """A real backend that asks for buckets of 16 and records every shape it runs."""

    def __init__(self, inner):
        self.inner, self.path, self.provider, self.packed = inner, inner.path, inner.provider, inner.packed
        self.pad_to_multiple = 16
        self.shapes: list[tuple[int, int]] = []

    def run(self, inputs):
        self.shapes.append(inputs["input_ids"].shape)
        return self.inner.run(inputs)


@pytest.fixture
def bucketed(bundles, monkeypatch):
    real = runtimes.open_file
    monkeypatch.setattr("rewardserve.service.backends.choice.open_file",
                        lambda *a, **k: Recording(real(*a, **k)))
    config = make_config(bundles, names=("classifier",), backend="onnxruntime")
    metrics = ServiceMetrics()
    return ScoringModel.load(config.models[0], config, metrics, ThreadPoolExecutor(1)), metrics


def test_warm_up_runs_every_bucket_before_serving(bucketed):
    model, _ = bucketed
    model.backend.shapes.clear()
    model.warm_up()
    lengths = {s[1] for s in model.backend.shapes}
    assert set(buckets(16, model.spec.max_length)) <= lengths  # 16, 32, 48, 64 for max_length 64
    assert lengths <= set(buckets(16, model.spec.max_length))  # and never another shape


async def test_served_batches_use_buckets_and_padding_efficiency_counts_the_rounding(bucketed):
    model, metrics = bucketed
    model.batcher.start()
    try:
        model.backend.shapes.clear()
        items = [TextItem("hi"), TextItem("a kind reply to everyone")]
        scores = await model.score(items, ScoreOptions(), time.monotonic() + 30)
    finally:
        await model.batcher.stop()
    assert len(scores) == 2 and all(s[1] % 16 == 0 for s in model.backend.shapes)
    padded = sum(r * c for r, c in model.backend.shapes)
    assert metrics.batch_tokens.labels("classifier")._sum.get() == padded  # the bucket's padding counted
    if len(model.backend.shapes) == 1:  # one batch: the efficiency observed is its ratio
        real = sum(s.num_tokens for s in scores)
        assert metrics.padding_efficiency.labels("classifier")._sum.get() == pytest.approx(real / padded)
        assert real < padded


def test_cuda_graph_row_buckets_are_powers_of_two_up_to_the_batch_limit():
    from rewardserve.service.backends.cuda_graphs import bucket_rows, row_buckets

    assert row_buckets(64) == [1, 2, 4, 8, 16, 32, 64] and row_buckets(48) == [1, 2, 4, 8, 16, 32, 48]
    assert [bucket_rows(n, 48) for n in (1, 3, 33, 48)] == [1, 4, 48, 48]
    assert bucket_rows(70, 48) == 70  # past the limit (never formed by the batcher): its own graph


def test_cuda_graphs_do_nothing_off_cuda(bundles):
    from rewardserve.service.backends.ort import OrtBackend
    from rewardserve.service.config import Provider

    from rewardserve.manifest import Manifest

    path = Manifest.load(bundles["classifier"]).variant("fp32").path(bundles["classifier"])
    backend = OrtBackend(path, Provider.cpu, 1, cuda_graphs_rows=16)
    assert backend.row_buckets == [1] and backend.pad_to_multiple == 0 and backend.provider == "CPUExecutionProvider"
    assert make_config(bundles, cuda_graphs="true").cuda_graphs is True


ort = pytest.importorskip("onnxruntime")


@pytest.mark.gpu
@pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(),
                    reason="needs onnxruntime-gpu with CUDAExecutionProvider (CPU-only onnxruntime here)")
def test_cuda_graph_replays_equal_plain_cuda_runs(bundles):
    from rewardserve.service.backends.ort import OrtBackend
    from rewardserve.service.config import Provider

    from rewardserve.manifest import Manifest

    path = Manifest.load(bundles["classifier"]).variant("fp32").path(bundles["classifier"])
    plain, graphs = OrtBackend(path, Provider.cuda), OrtBackend(path, Provider.cuda, cuda_graphs_rows=8)
    for rows, length in ((1, 16), (3, 32), (3, 32), (8, 64), (5, 16)):  # repeats replay a captured graph
        feed = pad_batch([_item(length - r) for r in range(rows)], 0, 16, 64)
        np.testing.assert_allclose(graphs.run(feed), plain.run(feed), atol=1e-5)
