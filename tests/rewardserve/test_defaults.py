"""The default-model builder behind `rewardserve serve` with no --model: build once, then reuse."""

from __future__ import annotations

import pytest
from rewardserve.training.tiny import save_tiny_base

from rewardserve import defaults
from rewardserve.manifest import Manifest
from tests.training.conftest import HH_PAIRS, write_jsonl


@pytest.fixture
def tiny_defaults(tmp_path, monkeypatch):
    """Default-model recipes shrunk to tiny models and data, with their own cache and data dirs."""
    data = tmp_path / "data"
    (data / "hh-rlhf-harmless").mkdir(parents=True)
    (data / "hate-speech-offensive").mkdir()
    for split in ("train", "dev"):
        write_jsonl(data / "hh-rlhf-harmless" / f"{split}.jsonl", HH_PAIRS * 2)
        (data / "hate-speech-offensive" / f"{split}.csv").write_text(
            "count,hate_speech,offensive_language,neither,class,tweet\n"
            + "3,0,3,0,1,you are a fool\n3,0,0,3,2,lovely weather today\n" * 4)
    base = save_tiny_base(tmp_path / "base", "bert", num_labels=1)
    tiny = {"base_model": str(base), "max_length": 32, "batch_size": 4, "num_epochs": 1.0, "norm_samples": 8,
            "logging_steps": 1}
    models = tuple(
        defaults.DefaultModel(m.name, m.kind, m.local_train, m.local_eval, m.hub_train, m.hub_eval,
                              {**m.common, **tiny}, {"quick": {}})
        for m in defaults.MODELS
    )
    monkeypatch.setattr(defaults, "MODELS", models)
    monkeypatch.setenv("REWARDSERVE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("REWARDSERVE_DATA", str(data))
    return tmp_path


@pytest.mark.slow
def test_build_then_reuse(tiny_defaults, monkeypatch):
    assert defaults.cached("quick") is None
    built = defaults.build("quick")
    assert set(built) == {"hh", "toxicity"}
    for path in built.values():
        manifest = Manifest.load(path)
        assert manifest.variant("fp32").passed
        assert (path / "reward.json").is_file() and (path / "tokenizer.json").is_file()
    assert defaults.cached("quick") == built

    # A second build trains nothing: the cache is reused.
    def no_training(config):
        raise AssertionError("retrained a cached model")

    monkeypatch.setattr("rewardserve.training.run.train", no_training)
    assert defaults.build("quick") == built

    from rewardserve.service.cli.serve import _default_models

    assert list(_default_models()) == ["hh", "toxicity"]  # hh first: the default model


def test_unknown_recipe_is_refused():
    with pytest.raises(ValueError, match="recipe must be one of"):
        defaults.build("huge")


def test_data_dir_from_environment(tmp_path, monkeypatch):
    (tmp_path / "hh-rlhf-harmless").mkdir()
    monkeypatch.setenv("REWARDSERVE_DATA", str(tmp_path))
    assert defaults.data_dir() == tmp_path
