"""The serving options of issue 12 and 14: max_wait_ms auto, on_batcher_failure, max_stream_in_flight."""

from __future__ import annotations

import pytest
from rewardserve.service.config import ModelSource, Provider, ServiceConfig

from rewardserve.enums import BatcherFailurePolicy

MODELS = (ModelSource("m", "/nowhere"),)


def test_max_wait_ms_auto_is_zero_on_cpu_and_a_few_ms_on_cuda():
    auto = ServiceConfig(models=MODELS)
    assert auto.max_wait_ms is None
    assert auto.wait_ms(Provider.cpu) == 0.0 and auto.wait_ms(Provider.cuda) == 5.0
    assert ServiceConfig.from_sources({"models": MODELS}, {"REWARDSERVE_MAX_WAIT_MS": "auto"}).max_wait_ms is None
    assert ServiceConfig(models=MODELS, max_wait_ms="0").wait_ms(Provider.cuda) == 0.0
    with pytest.raises(ValueError, match="max_wait_ms must be >= 0"):
        ServiceConfig(models=MODELS, max_wait_ms=-1)


def test_on_batcher_failure_and_stream_bound_are_validated():
    assert ServiceConfig(models=MODELS).on_batcher_failure is BatcherFailurePolicy.restart
    assert ServiceConfig(models=MODELS, on_batcher_failure="exit").on_batcher_failure is BatcherFailurePolicy.exit
    with pytest.raises(ValueError, match="on_batcher_failure: 'reboot' is not a valid BatcherFailurePolicy"):
        ServiceConfig(models=MODELS, on_batcher_failure="reboot")
    with pytest.raises(ValueError, match="max_stream_in_flight must be >= 1"):
        ServiceConfig(models=MODELS, max_stream_in_flight=0)
