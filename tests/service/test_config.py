"""ServiceConfig: defaults, precedence of sources, and validation messages that state the rule."""

from __future__ import annotations

import json

import pytest
from rewardserve.service.config import ModelSource, Provider, ServiceConfig

from rewardserve.manifest import Runtime, ServedPrecision

M = (ModelSource("a", "/x"),)


def test_defaults_are_loopback_and_typed():
    c = ServiceConfig(models=M)
    assert c.host == "127.0.0.1" and c.precision is None and c.provider is Provider.auto
    assert ServiceConfig(models=("b=/y", "/z/c"), precision="int8").models == (ModelSource("b", "/y"),
                                                                              ModelSource("c", "/z/c"))


def test_sources_precedence_file_env_cli(tmp_path):
    toml = tmp_path / "serve.toml"
    toml.write_text('max-wait-ms = 7.5\nport = 1\nprecision = "fp16"\n[models]\nhh = "/m/hh"\ntox = "/m/tox"\n')
    env = {"REWARDSERVE_PORT": "2", "REWARDSERVE_ALLOW_FAILED_PARITY": "true", "OTHER": "x"}
    c = ServiceConfig.from_sources({"port": "3", "provider": None}, env, toml)
    assert c.port == 3 and c.max_wait_ms == 7.5 and c.allow_failed_parity is True
    assert c.precision is ServedPrecision.fp16 and [m.name for m in c.models] == ["hh", "tox"]
    js = tmp_path / "serve.json"
    js.write_text(json.dumps({"models": ["hh=/m/hh"], "metrics_port": "off"}))
    assert ServiceConfig.from_sources({}, {}, js).metrics_port is None
    assert ServiceConfig.from_sources({}, {"REWARDSERVE_MODELS": "a=/1,b=/2"}).models[1] == ModelSource("b", "/2")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"models": ()}, "models must name at least one"),
        ({"models": ("a=/x", "a=/y")}, "model names must be unique"),
        ({"port": 70000}, "port must be in 0..65535"),
        ({"max_batch_items": 0}, "max_batch_items must be >= 1"),
        ({"max_items_per_request": 10, "max_queue_items": 5}, "max_items_per_request (10) must be <= max_queue_items"),
        ({"max_wait_ms": -1}, "max_wait_ms must be >= 0"),
        ({"inline_batch_ms": -0.5}, "inline_batch_ms must be >= 0"),
        ({"request_timeout_s": 0}, "request_timeout_s must be > 0"),
        ({"precision": "fp8"}, "precision: "),
        ({"provider": "tpu"}, "provider: "),
        ({"allow_failed_parity": "maybe"}, "allow_failed_parity: expected a boolean"),
    ],
)
def test_validation_states_the_rule(kwargs, message):
    with pytest.raises(ValueError) as e:
        ServiceConfig(**{"models": M, **kwargs})
    assert message in str(e.value)


def test_unknown_setting_and_max_length_rule(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text('{"max_batch": 3}')
    with pytest.raises(ValueError, match="unknown setting 'max_batch'"):
        ServiceConfig.from_sources({}, {}, bad)
    with pytest.raises(ValueError, match="max_batch_tokens must be >= max_length of every model: hh has max_length 512"):
        ServiceConfig(models=M, max_batch_tokens=256).check_max_length("hh", 512)


def test_threading_auto_and_explicit():
    """Auto on CPU: one 1-thread worker per core; explicit values win; CUDA: one worker."""
    base = {"models": (ModelSource("m", "/x"),)}
    assert ServiceConfig(**base).threading(Provider.cpu, cores=4) == (4, 1)
    assert ServiceConfig(**base, intra_op_threads=2).threading(Provider.cpu, cores=4) == (2, 2)
    assert ServiceConfig(**base, inference_workers=1).threading(Provider.cpu, cores=4) == (1, 4)
    assert ServiceConfig(**base, inference_workers=3, intra_op_threads=1).threading(Provider.cpu, cores=4) == (3, 1)
    assert ServiceConfig(**base).threading(Provider.cuda, cores=16) == (1, 0)
    with pytest.raises(ValueError, match="inference_workers must be >= 0"):
        ServiceConfig(**base, inference_workers=-1)


def test_padding_floor_auto_per_provider_set_and_bounded():
    assert ServiceConfig(models=M).padding_floor(Provider.cpu) == 0.8
    assert ServiceConfig(models=M).padding_floor(Provider.cuda) == 0.0
    assert ServiceConfig.from_sources({"models": ["a=/x"], "min_padding_efficiency": "0.5"}).padding_floor("cuda") == 0.5
    with pytest.raises(ValueError, match="min_padding_efficiency must be between 0 and 1, got 1.5"):
        ServiceConfig(models=M, min_padding_efficiency=1.5)


def test_packing_auto_on_off_and_what_it_sets():
    assert ServiceConfig(models=M).packing is None  # auto: served where export measured it faster
    assert ServiceConfig(models=M, packing="on").packing is True and ServiceConfig(models=M, packing="off").packing is False
    with pytest.raises(ValueError, match=r"packing: expected auto, on or off, got 'sometimes'"):
        ServiceConfig(models=M, packing="sometimes")
    c = ServiceConfig(models=M)
    assert c.padding_floor(Provider.cpu, packed=True) == 0.0  # packed rows: no padding between items to bound
    assert c.batch_tokens(Provider.cpu, 64, Runtime.openvino, packed=True) > c.batch_tokens(Provider.cpu, 64, Runtime.openvino)
    assert ServiceConfig(models=M, min_padding_efficiency=0.5).padding_floor(Provider.cpu, packed=True) == 0.5  # set
