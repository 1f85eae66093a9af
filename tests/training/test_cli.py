"""`rewardserve train` and `rewardserve eval` from the command line, LoRA included."""

from __future__ import annotations

import json

import pytest

from rewardserve.bundle import RewardSpec
from rewardserve.cli import main


@pytest.mark.slow
def test_train_with_lora_then_eval(tmp_path, tiny_bert_base, hh_file, capsys):
    out = tmp_path / "rm"
    rc = main(["train", "pairwise", "--train-data", str(hh_file), "--output-dir", str(out),
               "--base-model", str(tiny_bert_base), "--max-length", "64", "--num-epochs", "1",
               "--batch-size", "4", "--lora-rank", "4", "--learning-rate", "1e-3"])
    assert rc == 0
    # LoRA adapters are merged: the bundle holds plain weights that transformers and export read.
    assert not (out / "adapter_config.json").exists()
    assert RewardSpec.load(out).kind.value == "pairwise"
    capsys.readouterr()
    rc = main(["eval", str(out), str(hh_file), "--out", str(tmp_path / "m.json")])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((tmp_path / "m.json").read_text())
    assert printed == saved and saved["pairs"] == 16 and 0 <= saved["accuracy"] <= 1
    assert set(saved) >= {"accuracy", "mean_margin", "ece", "prefer_longer", "prefer_shorter"}


def test_bad_data_is_a_cli_error_naming_the_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{oops\n')
    rc = main(["train", "pairwise", "--train-data", str(bad), "--output-dir", str(tmp_path / "o")])
    assert rc == 2
    assert f"{bad}:2: invalid JSON" in capsys.readouterr().err


def test_invalid_option_states_the_rule(tmp_path, capsys):
    rc = main(["train", "pairwise", "--train-data", "x.jsonl", "--output-dir", str(tmp_path), "--max-length", "2"])
    assert rc == 2
    assert "max_length must be between 8 and 32768" in capsys.readouterr().err
