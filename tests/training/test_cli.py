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


@pytest.mark.slow
def test_classifier_skip_invalid_and_eval_against_votes(tmp_path, tiny_bert_base, capsys):
    # Issue 14 item 10: --skip-invalid was accepted for classifiers but the first bad row still stopped the run.
    rows = [("you are an idiot", 1, 0, 3, 0), ("lovely weather", 2, 0, 0, 3), ("shut up fool", 1, 1, 2, 0),
            ("thanks a lot", 2, 0, 1, 2)] * 3
    good = "".join(f'{c},{h},{o},{n},"{t}"\n' for t, c, h, o, n in rows)
    data = tmp_path / "tox.csv"
    data.write_text("class,hate_speech,offensive_language,neither,tweet\n" + good + '9,0,0,3,"unknown class"\n')
    args = ["train", "classifier", "--train-data", str(data), "--output-dir", str(tmp_path / "m"),
            "--base-model", str(tiny_bert_base), "--text-column", "tweet", "--label-column", "class",
            "--label-map", "0=toxic,1=toxic,2=non_toxic", "--reward-label", "non_toxic", "--max-length", "16",
            "--num-epochs", "1", "--batch-size", "4"]
    assert main(args) == 2
    assert f"{data}:14: field 'class': unknown label '9'" in capsys.readouterr().err
    assert main([*args, "--skip-invalid"]) == 0
    metrics = RewardSpec.load(tmp_path / "m").metrics
    assert metrics["train_data"]["records"] == 13 and metrics["train_data"]["skipped"] == 1
    capsys.readouterr()
    dev = tmp_path / "dev.csv"
    dev.write_text("class,hate_speech,offensive_language,neither,tweet\n" + good)
    votes = "hate_speech=toxic,offensive_language=toxic,neither=non_toxic"
    assert main(["eval", str(tmp_path / "m"), str(dev), "--label-votes", votes]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["examples"] == 12 and ev["vote_ece_bins"] == 15 and 0 <= ev["vote_ece"] <= 1
    assert set(ev["vote_correlation"]) == {"toxic", "non_toxic"} and ev["vote_brier"] >= 0
