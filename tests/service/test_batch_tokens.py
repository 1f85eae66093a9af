"""The auto token budget per batch: small on CPU (padding costs, batching buys little), large on CUDA."""

from __future__ import annotations

import pytest
from rewardserve.service.auto_batching import AUTO_BATCH_TOKENS
from rewardserve.service.config import ModelSource, Provider, ServiceConfig

M = (ModelSource("hh", "models/hh-onnx"),)


def test_auto_budget_depends_on_the_provider_and_covers_max_length():
    config = ServiceConfig(models=M)
    assert config.max_batch_tokens == 0
    assert config.batch_tokens(Provider.cpu, 256) == AUTO_BATCH_TOKENS["cpu"]
    assert config.batch_tokens(Provider.cuda, 256) == AUTO_BATCH_TOKENS["cuda"]
    assert config.batch_tokens(Provider.cpu, 4096) == 4096  # one longest item always fits
    config.check_max_length("hh", 100_000)  # auto never refuses a model


def test_an_explicit_budget_is_kept_and_checked():
    config = ServiceConfig(models=M, max_batch_tokens=2048)
    assert config.batch_tokens(Provider.cpu, 256) == config.batch_tokens(Provider.cuda, 256) == 2048
    with pytest.raises(ValueError, match="max_batch_tokens must be >= max_length"):
        config.check_max_length("hh", 4096)
    with pytest.raises(ValueError, match="max_batch_tokens must be >= 0"):
        ServiceConfig(models=M, max_batch_tokens=-1)
