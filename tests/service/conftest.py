"""Shared fixtures: tiny ONNX bundles exported once per session, and running servers."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from rewardserve.service.config import ModelSource, ServiceConfig
from rewardserve.service.edge.server import RewardServer

from rewardserve.bundle import Normalization, RewardSpec
from rewardserve.enums import Precision

NORMALIZATION = Normalization(mean=0.25, std=2.0)


def _export(root: Path, name: str, family: str, kind: str, precisions, normalization=None) -> Path:
    from rewardserve.export.config import ExportConfig, Tolerances
    from rewardserve.export.pipeline import export_bundle
    from rewardserve.training.tiny import make_tiny_bundle

    bundle = make_tiny_bundle(root / name, family, kind)
    if normalization is not None:
        RewardSpec.load(bundle).with_updates(normalization=normalization).save(bundle)
    out = root / f"{name}-onnx"
    # Random tiny weights give near-equal rewards, so int8 ordering agreement is noise: gate it off
    # here (the refusal of failed variants is tested separately).
    tolerances = Tolerances(int8_min_agreement=None)
    export_bundle(ExportConfig(bundle=bundle, out=out, precisions=tuple(precisions), throughput=False, builtin_texts=True,
                               max_texts=8, parity_batch_size=4, tolerances=tolerances))
    return out


@pytest.fixture(scope="session")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """ONNX bundles: ``pairwise`` (BERT, fp32+int8, normalisation stats), ``classifier`` (BERT), ``gpt2``."""
    root = tmp_path_factory.mktemp("onnx")
    return {
        "pairwise": _export(root, "pairwise", "bert", "pairwise", (Precision.fp32, Precision.int8), NORMALIZATION),
        "classifier": _export(root, "classifier", "bert", "classifier", (Precision.fp32,)),
        "gpt2": _export(root, "gpt2", "gpt2", "pairwise", (Precision.fp32,)),
    }


def make_config(bundles: dict[str, Path], names=("pairwise", "classifier", "gpt2"), **overrides) -> ServiceConfig:
    """A test config: fp32, loopback, free ports, small batches."""
    values = dict(
        models=tuple(ModelSource(n, str(bundles[n])) for n in names), port=0, metrics_port=0,
        precision="fp32", max_batch_items=16, max_batch_tokens=1024, max_wait_ms=2.0, intra_op_threads=1,
        tokenizer_workers=1, grace_period_s=2.0,
    )
    values.update(overrides)
    return ServiceConfig(**values)


class ServerThread:
    """A RewardServer on its own event loop in a daemon thread (sync tests can call it)."""

    def __init__(self, config: ServiceConfig, wait_ready: bool = True, **kwargs):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = RewardServer(config, **kwargs)
        self.call(self.server.start())
        if wait_ready:
            self.call(self.server.wait_ready())

    def call(self, coro, timeout: float = 60.0):
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.server.metrics_port}/metrics"

    def stop(self) -> None:
        self.call(self.server.stop(0.5))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="session")
def server(bundles):
    """A ready server with three models: pairwise (default), classifier, gpt2."""
    s = ServerThread(make_config(bundles))
    yield s
    s.stop()
