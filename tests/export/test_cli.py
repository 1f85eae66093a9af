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
                   "int8", "--no-throughput", "--json", "--builtin-texts"])
    assert args.handler(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(report["variants"]) == ["fp32", "int8"]
    assert report["variants"]["int8"]["parity"]["agreement_metric"] == "argmax_agreement"
    assert report["variants"]["fp32"]["passed"] is True


def test_failing_gate_exits_nonzero_naming_variant_metric_value(tiny_bundle, tmp_path, capsys):
    # A gate no real export can meet: int8 must match fp32 to 1e-9.
    args = _parse([str(tiny_bundle("bert", "pairwise")), "--out", str(tmp_path / "o"), "--precision", "int8",
                   "--no-throughput", "--int8-max-logit-diff", "1e-9", "--builtin-texts"])
    assert args.handler(args) == PARITY_FAILED_EXIT
    err = capsys.readouterr().err
    assert "parity failed: int8: max_abs_logit_diff=" in err and "exceeds tolerance 1e-09" in err


def test_tolerance_none_disables_gate_and_bad_values_are_user_errors(tmp_path):
    args = _parse(["b", "--out", str(tmp_path), "--int8-min-agreement", "none"])
    assert args.int8_min_agreement is None
    with pytest.raises(SystemExit):
        _parse(["b", "--out", "o", "--fp16-max-logit-diff", "abc"])
    with pytest.raises(ValueError, match="opset must be >= 17"):
        config_from_args(_parse(["b", "--out", "o", "--opset", "16", "--builtin-texts"]))
    with pytest.raises(ValueError, match="fp16_min_agreement must be a fraction"):
        config_from_args(_parse(["b", "--out", "o", "--fp16-min-agreement", "2", "--builtin-texts"]))


def test_size_of_error_gates_have_flags_with_help(tmp_path, capsys):
    args = _parse(["b", "--out", str(tmp_path), "--int8-max-mean-reward-diff", "0.5", "--int8-max-prob-diff", "none",
                   "--builtin-texts"])
    tol = config_from_args(args).tolerances
    assert tol.int8_max_mean_reward_diff == 0.5 and tol.int8_max_prob_diff is None
    with pytest.raises(SystemExit):
        _parse(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--int8-max-mean-reward-diff" in out and "catches a uniform shift" in out
    assert "Bradley-Terry" in out and "(default 0.07)" in out


def test_without_texts_or_builtin_texts_is_a_clear_user_error(tmp_path):
    from rewardserve.cli import CLIError

    with pytest.raises(CLIError, match=r"parity needs texts: pass --texts FILE .* or --builtin-texts"):
        config_from_args(_parse(["b", "--out", str(tmp_path)]))
    with pytest.raises(SystemExit):  # argparse: not allowed with each other
        _parse(["b", "--out", str(tmp_path), "--texts", "t.jsonl", "--builtin-texts"])
    assert config_from_args(_parse(["b", "--out", str(tmp_path), "--builtin-texts"])).builtin_texts


def test_ranking_file_as_parity_texts(tiny_bundle, tmp_path, capsys):
    rows = [{"prompt": f"\n\nHuman: question {i}?", "completions": [f"\n\nAssistant: answer {i} " + "word " * i,
                                                                    f"\n\nAssistant: no {i}", "\n\nAssistant: hm"],
             "ranks": [1, 2, 2]} for i in range(4)]  # a tie: 2 comparisons per prompt
    texts = tmp_path / "rank.jsonl"
    texts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = _parse([str(tiny_bundle("bert", "pairwise")), "--out", str(tmp_path / "o"), "--precision", "fp32",
                   "--no-throughput", "--json", "--texts", str(texts)])
    assert args.handler(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parity_data"]["paired"] is True and report["parity_data"]["n_texts"] == 16
    assert report["parity_data"]["source"] == str(texts)
