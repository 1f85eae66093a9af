"""Session-scoped tiny model bundles and their ONNX exports, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

# Random init (std 0.02) makes every text score almost the same, so any rounding reorders
# pairs; wider weights give a tiny model distinct scores, as a trained model has.
SPREAD_STD = 0.1


def spread_weights(bundle: Path, std: float = SPREAD_STD, seed: int = 0) -> None:
    """Re-draw a bundle's matrices with a wider normal so texts get clearly different scores."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(bundle)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 2:
                param.normal_(0.0, std, generator=gen)
    model.save_pretrained(bundle)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """Factory: ``tiny_bundle(family, kind)`` -> path of a cached tiny model bundle."""
    from rewardserve.training.tiny import make_tiny_bundle

    cache: dict[tuple[str, str], Path] = {}

    def make(family: str = "bert", kind: str = "pairwise") -> Path:
        if (family, kind) not in cache:
            path = make_tiny_bundle(tmp_path_factory.mktemp("bundles") / f"{family}-{kind}", family, kind)
            spread_weights(path)
            cache[family, kind] = path
        return cache[family, kind]

    return make


@pytest.fixture(scope="session")
def exported(tiny_bundle, tmp_path_factory):
    """Factory: ``exported(family, kind)`` -> (bundle, manifest) with all three variants."""
    from rewardserve.export.config import ExportConfig
    from rewardserve.export.pipeline import export_bundle

    cache: dict = {}

    def make(family: str = "bert", kind: str = "pairwise"):
        if (family, kind) not in cache:
            bundle = tiny_bundle(family, kind)
            out = tmp_path_factory.mktemp("onnx") / f"{family}-{kind}"
            config = ExportConfig(bundle=bundle, out=out, bench_min_time_s=0.0, bench_batch_size=2, bench_seq_len=16,
                                  builtin_texts=True)
            cache[family, kind] = (bundle, export_bundle(config))
        return cache[family, kind]

    return make
