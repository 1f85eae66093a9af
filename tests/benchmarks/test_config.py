"""BenchConfig validation and the CLI's flag handling: no model needed."""

from __future__ import annotations

import argparse

import pytest
from rewardserve.benchmarks.config import BenchConfig


def test_parses_strings_and_keeps_auto_threads():
    c = BenchConfig(bundle="b", concurrency="1, 4,16", variants="fp32,int8", open_loop_fractions="0.5", threads=0)
    assert c.concurrency == (1, 4, 16)
    assert c.variants == ("fp32", "int8")
    assert c.open_loop_fractions == (0.5,)
    assert c.threads == 0  # auto: each system's own default
    assert c.to_dict()["bundle"] == "b"


@pytest.mark.parametrize("kwargs, message", [
    ({"variants": "fp64"}, "variants must be among"),
    ({"concurrency": "0,4"}, "concurrency must list client counts >= 1"),
    ({"duration_s": 0}, "duration_s must be > 0"),
    ({"open_loop_fractions": "0"}, "open_loop_fractions must be > 0"),
    ({"items_per_request": 0}, "items_per_request must be >= 1"),
    ({"device": "tpu"}, "device must be cpu or cuda"),
])
def test_rules_are_stated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BenchConfig(bundle="b", **kwargs)


def test_torch_baseline_needs_source_bundle():
    assert not BenchConfig(bundle="b").torch_enabled
    assert BenchConfig(bundle="b", source_bundle="s").torch_enabled
    assert not BenchConfig(bundle="b", source_bundle="s", torch_baseline=False).torch_enabled


def test_cli_quick_presets_lose_to_explicit_flags():
    from rewardserve.benchmarks.cli import config_from_args, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["bench", "--bundle", "b", "--quick", "--duration-s", "0.5", "--no-torch"])
    c = config_from_args(args)
    assert c.concurrency == (1, 8)  # from --quick
    assert c.duration_s == 0.5  # explicit flag wins
    assert c.torch_baseline is False


def test_negative_threads_are_refused():
    with pytest.raises(ValueError, match=r"threads must be >= 0 \(0: auto\), got -1"):
        BenchConfig(bundle="b", threads=-1)
