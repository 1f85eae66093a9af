"""The ``export`` subcommand: exit codes, messages, --json, tolerance overrides."""

from __future__ import annotations

import argparse
import json

import pytest
from rewardserve.export.cli import PARITY_FAILED_EXIT, config_from_args, register


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rewardserve")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["export", *argv])


def test_json_report_and_success_exit(tiny_bundle, tmp_path, capsys):
    args = _parse([str(tiny_bundle("bert", "classifier")), "--out", str(tmp_path / "o"), "--precision", "fp32",
                   "int8", "--no-throughput", "--json"])
    assert args.handler(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(report["variants"]) == ["fp32", "int8"]
    assert report["variants"]["int8"]["parity"]["agreement_metric"] == "argmax_agreement"
    assert report["variants"]["fp32"]["passed"] is True


def test_failing_gate_exits_nonzero_naming_variant_metric_value(tiny_bundle, tmp_path, capsys):
    # A gate no real export can meet: int8 must match fp32 to 1e-9.
    args = _parse([str(tiny_bundle("bert", "pairwise")), "--out", str(tmp_path / "o"), "--precision", "int8",
                   "--no-throughput", "--int8-max-logit-diff", "1e-9"])
    assert args.handler(args) == PARITY_FAILED_EXIT
    err = capsys.readouterr().err
    assert "parity failed: int8: max_abs_logit_diff=" in err and "exceeds tolerance 1e-09" in err


def test_tolerance_none_disables_gate_and_bad_values_are_user_errors(tmp_path):
    args = _parse(["b", "--out", str(tmp_path), "--int8-min-agreement", "none"])
    assert args.int8_min_agreement is None
    with pytest.raises(SystemExit):
        _parse(["b", "--out", "o", "--fp16-max-logit-diff", "abc"])
    with pytest.raises(ValueError, match="opset must be >= 17"):
        config_from_args(_parse(["b", "--out", "o", "--opset", "16"]))
    with pytest.raises(ValueError, match="fp16_min_agreement must be a fraction"):
        config_from_args(_parse(["b", "--out", "o", "--fp16-min-agreement", "2"]))
