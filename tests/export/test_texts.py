"""Parity texts from user files."""

from __future__ import annotations

import json

import pytest
from rewardserve.export.texts import load_texts

from rewardserve.bundle import RewardSpec
from rewardserve.enums import ModelKind, TextFormat

SPEC = RewardSpec(kind=ModelKind.pairwise, id2label={0: "reward"}, reward_label="reward", max_length=64,
                  text_format=TextFormat.prompt_response, prompt_template="Q: {prompt} A: {response}")


def test_jsonl_pairs_keep_whole_pairs(tmp_path):
    path = tmp_path / "dev.jsonl"
    path.write_text("\n".join(json.dumps({"chosen": f"c{i}", "rejected": f"r{i}"}) for i in range(5)))
    texts = load_texts(path, SPEC, max_texts=5)
    assert texts.paired and texts.texts == ["c0", "r0", "c1", "r1"]


def test_jsonl_prompt_response_is_formatted_with_the_spec(tmp_path):
    path = tmp_path / "dev.jsonl"
    path.write_text(json.dumps({"prompt": "hi", "chosen": "hello", "rejected": "go away"}) + "\n")
    assert load_texts(path, SPEC, 10).texts == ["Q: hi A: hello", "Q: hi A: go away"]


def test_csv_tweet_column(tmp_path):
    path = tmp_path / "dev.csv"
    path.write_text('class,tweet\n0,"first, with comma"\n1,second\n2,third\n')
    texts = load_texts(path, SPEC, 10)
    assert texts.texts == ["first, with comma", "second"] and not texts.paired


def test_csv_without_text_column_names_the_rule(tmp_path):
    path = tmp_path / "dev.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="needs a column named one of"):
        load_texts(path, SPEC, 10)


@pytest.mark.parametrize(("line", "message"), [("{oops", "invalid JSON"), ('["x"]', "expected a JSON object"),
                                               ('{"body": "x"}', "needs 'chosen'/'rejected'")])
def test_bad_jsonl_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "dev.jsonl"
    path.write_text(json.dumps({"text": "fine"}) + "\n" + line + "\n")
    with pytest.raises(ValueError) as e:
        load_texts(path, SPEC, 10)
    assert f"{path}:2" in str(e.value) and message in str(e.value)
