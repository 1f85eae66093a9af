"""64 concurrent clients, mixed lengths, two models: every batched result equals its solo score."""

from __future__ import annotations

import asyncio
import random

import pytest
from rewardserve.service.backends.ort import OrtBackend
from rewardserve.service.client import AsyncRewardClient
from rewardserve.service.config import Provider
from rewardserve.service.engine.encoding import TextEncoder
from rewardserve.service.engine.models import padded

from rewardserve.bundle import RewardSpec
from rewardserve.enums import Truncation
from rewardserve.manifest import Manifest

pytestmark = pytest.mark.e2e

WORDS = ["reward", "model", "scores", "the", "response", "to", "a", "prompt", "with", "care", "and", "the", "trainer", "learns", "from", "it"]


def solo_logits(bundle, texts: list[str]) -> list[list[float]]:
    """Each text run alone (batch of one) straight through ONNX Runtime, no server."""
    spec = RewardSpec.load(bundle)
    encoder = TextEncoder.from_file(bundle / "tokenizer.json", spec.max_length)
    pad_id = Manifest.load(bundle).pad_token_id
    runner = padded(OrtBackend(bundle / "model_fp32.onnx", Provider.cpu, intra_op_threads=1), pad_id)
    return [runner(encoder.encode_batch([t], spec.truncation_side))[0].tolist() for t in texts]


async def test_64_concurrent_clients_get_their_own_solo_results(server, bundles):
    rng = random.Random(0)
    models = ("classifier", "gpt2")
    jobs = []  # (client index, model, texts)
    for c in range(64):
        for _ in range(2):
            texts = [" ".join(rng.choices(WORDS, k=rng.randint(1, 60))) + f" #{c}" for _ in range(rng.randint(1, 3))]
            jobs.append((c, models[(c + len(jobs)) % 2], texts))
    batches_before = server.server.metrics.registry.get_sample_value("rewardserve_batch_size_count",
                                                                     {"model": "gpt2"}) or 0

    async def run_client(c: int):
        async with AsyncRewardClient(server.target, timeout_s=60) as client:
            return [(model, texts, await client.score(texts, model=model, truncation=Truncation.left))
                    for cc, model, texts in jobs if cc == c]

    per_client = await asyncio.gather(*(run_client(c) for c in range(64)))
    results = [r for rs in per_client for r in rs]
    assert len(results) == len(jobs)

    for model in models:
        mine = [(texts, r) for m, texts, r in results if m == model]
        texts = [t for ts, _ in mine for t in ts]
        expected = iter(solo_logits(bundles[model], texts))
        for ts, r in mine:
            assert r.model == model and len(r.scores) == len(ts)
            for s in r.scores:
                assert s.logits == pytest.approx(next(expected), abs=1e-5)
    # Items really were batched together (the point of the test).
    registry = server.server.metrics.registry
    batches = registry.get_sample_value("rewardserve_batch_size_count", {"model": "gpt2"}) - batches_before
    items = sum(len(t) for _, m, t in jobs if m == "gpt2")
    assert batches < items
