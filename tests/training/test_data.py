"""Data loaders: every format, ranking -> pairs, HH splitting, and each bad-input error."""

from __future__ import annotations

import json

import pytest
from rewardserve.training.data import (
    DataError,
    TextFormatter,
    flatten_pairs,
    load_classification,
    load_preferences,
    parse_label_map,
    ranking_to_pairs,
    split_dialogue_pair,
)

from rewardserve.bundle import HH_CHAT_TEMPLATE
from tests.conftest import SHARED_DATA

from .conftest import write_jsonl

FMT = TextFormatter("{prompt}{response}", HH_CHAT_TEMPLATE)


def test_ranking_to_pairs_counts_and_ties():
    assert len(ranking_to_pairs([1, 2, 3])) == 3  # C(3, 2)
    assert len(ranking_to_pairs([1, 2, 3, 4, 5])) == 10
    assert ranking_to_pairs([2, 1, 3]) == [(1, 0), (0, 2), (1, 2)]
    assert ranking_to_pairs([1, 1, 2]) == [(0, 2), (1, 2)]  # the tie gives no pair
    assert ranking_to_pairs([1, 1]) == []


def test_house_too_hot_ranking(tmp_path):
    """The InstructGPT-style example: one prompt, three completions ranked by helpfulness."""
    rec = {
        "prompt": "My house is too hot.",
        "completions": [" Open the windows at night and close the blinds by day.",
                        " Buy a fan.", " Move to Antarctica."],
        "ranks": [1, 2, 3],
    }
    groups, _ = load_preferences(write_jsonl(tmp_path / "r.jsonl", [rec]), FMT)
    assert len(groups) == 1 and len(groups[0].texts) == 3
    assert groups[0].pairs == ((0, 1), (0, 2), (1, 2))
    assert groups[0].texts[0] == "My house is too hot. Open the windows at night and close the blinds by day."
    pairs = flatten_pairs(groups)
    assert len(pairs) == 3
    assert pairs[0].texts == (groups[0].texts[0], groups[0].texts[1])  # better first


def test_ranking_ties_are_skipped_and_counted(tmp_path):
    rec = {"prompt": "p", "completions": ["a", "b", "c"], "ranks": [1, 1, 2]}
    groups, report = load_preferences(write_jsonl(tmp_path / "r.jsonl", [rec]), FMT)
    assert len(groups[0].pairs) == 2
    assert sum(report.skipped.values()) == 1


def test_hh_split_common_case():
    c = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: insult me\n\nAssistant: no."
    r = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: insult me\n\nAssistant: you idiot."
    prompt, a, b = split_dialogue_pair(c, r)
    assert prompt == "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: insult me"
    assert a == "\n\nAssistant: no." and b == "\n\nAssistant: you idiot."


def test_hh_split_responses_sharing_a_prefix():
    # The responses start alike ("I") so the divergence is inside the last turn.
    c = "\n\nHuman: q\n\nAssistant: I will not."
    r = "\n\nHuman: q\n\nAssistant: I will."
    prompt, a, b = split_dialogue_pair(c, r)
    assert prompt == "\n\nHuman: q" and prompt + a == c and prompt + b == r


def test_hh_split_malformed_pairs_are_not_mangled():
    # Diverging in an earlier turn: the split happens before that turn, nothing is lost.
    c = "\n\nHuman: q\n\nAssistant: a1\n\nHuman: q2\n\nAssistant: a2"
    r = "\n\nHuman: q\n\nAssistant: b1\n\nHuman: q2\n\nAssistant: b2"
    prompt, a, b = split_dialogue_pair(c, r)
    assert prompt == "\n\nHuman: q" and prompt + a == c and prompt + b == r
    # Two Assistant turns in a row.
    c = "\n\nHuman: q\n\nAssistant: a\n\nAssistant: more"
    r = "\n\nHuman: q\n\nAssistant: a\n\nAssistant: other"
    prompt, a, b = split_dialogue_pair(c, r)
    assert prompt == "\n\nHuman: q\n\nAssistant: a" and a == "\n\nAssistant: more"
    # No Assistant turn before the divergence: whole texts kept, empty prompt.
    assert split_dialogue_pair("\n\nHuman: a", "\n\nHuman: b") == ("", "\n\nHuman: a", "\n\nHuman: b")
    # The marker itself straddling the divergence point is not used.
    c, r = "\n\nHuman: q\n\nAssistant: x", "\n\nHuman: q\n\nAssistanT: x"
    assert split_dialogue_pair(c, r)[0] == ""


def test_real_hh_file_splits_round_trip():
    """Every pair of the shared HH training data splits so that prompt + response is the text."""
    path = SHARED_DATA / "hh-rlhf-harmless" / "train.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not present (the shared data lies beside the checkout in CI)")
    lines = path.read_text().splitlines()
    splits = 0
    for line in lines:
        rec = json.loads(line)
        p, a, b = split_dialogue_pair(rec["chosen"], rec["rejected"])
        assert p + a == rec["chosen"] and p + b == rec["rejected"]
        splits += bool(p) and a.startswith("\n\nAssistant:")
    assert splits >= 1600  # the README says 1,607 of 1,612 follow the pattern


def test_prompt_pairs_margin_and_conversations(tmp_path):
    rows = [
        {"prompt": "Q: ", "chosen": "good", "rejected": "bad", "margin": 1.5},
        {"prompt": [{"role": "user", "content": "hi"}],
         "chosen": [{"role": "assistant", "content": "hello!"}],
         "rejected": [{"role": "assistant", "content": "go away"}]},
    ]
    groups, _ = load_preferences(write_jsonl(tmp_path / "p.jsonl", rows), FMT)
    assert groups[0].texts == ("Q: good", "Q: bad") and groups[0].margins == (1.5,)
    assert groups[1].texts[0] == "\n\nHuman: hi\n\nAssistant: hello!"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "invalid JSON"),
        ('["a list"]', "expected a JSON object"),
        (json.dumps({"prompt": "p", "chosen": "a"}), "missing field 'rejected'"),
        (json.dumps({"prompt": "p", "chosen": "  ", "rejected": "b"}), "field 'chosen' is empty"),
        (json.dumps({"chosen": "same", "rejected": "same"}), "'chosen' and 'rejected' are identical"),
        (json.dumps({"prompt": "p", "chosen": "a", "rejected": "b", "margin": "x"}), "field 'margin'"),
        (json.dumps({"prompt": "p", "completions": ["a", "b"], "ranks": [1]}), "field 'ranks' must list one rank"),
        (json.dumps({"prompt": "p", "completions": ["a", "b"], "ranks": [1, 0]}), "ranks[1]"),
        (json.dumps({"prompt": "p", "completions": ["a", "a"], "ranks": [1, 2]}), "same completion twice"),
        (json.dumps({"chosen": [{"role": "robot", "content": "x"}], "rejected": [{"role": "user", "content": "y"}]}),
         "role"),
    ],
)
def test_bad_preference_records_name_file_line_and_field(tmp_path, line, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [HH_OK, line])
    with pytest.raises(DataError) as e:
        load_preferences(path, FMT)
    assert f"{path}:2" in str(e.value) and message in str(e.value)


HH_OK = {"chosen": "\n\nHuman: q\n\nAssistant: yes", "rejected": "\n\nHuman: q\n\nAssistant: no"}


def test_skip_invalid_counts_skips(tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", [HH_OK, {"chosen": "x", "rejected": "x"}, HH_OK])
    groups, report = load_preferences(path, FMT, skip_invalid=True)
    assert len(groups) == 2 and sum(report.skipped.values()) == 1


def test_classification_csv_with_label_map(tox_file):
    rows, names, _ = load_classification(tox_file, "tweet", "class", parse_label_map("0=toxic,1=toxic,2=non_toxic"))
    assert names == ["toxic", "non_toxic"]
    assert {r.label for r in rows} == {0, 1}
    assert rows[2].text == "have a lovely day everyone" and rows[2].label == 1


def test_classification_errors(tmp_path, tox_file):
    with pytest.raises(DataError, match=r"tox.csv:\d+: field 'class': unknown label '2'"):
        load_classification(tox_file, "tweet", "class", {"0": "toxic", "1": "toxic"})
    with pytest.raises(DataError, match="missing field 'body'"):
        load_classification(tox_file, "body", "class")
    with pytest.raises(DataError, match="label map: expected RAW=NAME"):
        parse_label_map("0:toxic")
    with pytest.raises(DataError, match="file not found"):
        load_classification(tmp_path / "nope.csv")
    p = write_jsonl(tmp_path / "c.jsonl", [{"text": "a", "label": "x"}, {"text": "b"}])
    with pytest.raises(DataError, match=r"c.jsonl:2: missing field 'label'"):
        load_classification(p)


def test_hf_source_names():
    from rewardserve.training.data import parse_hf_source

    assert parse_hf_source("hf:Anthropic/hh-rlhf:test?data_dir=harmless-base") == (
        "Anthropic/hh-rlhf", "test", "harmless-base")
    assert parse_hf_source("hf:tdavidson/hate_speech_offensive") == ("tdavidson/hate_speech_offensive", "train", None)
    with pytest.raises(DataError, match=r"only \?data_dir=DIR"):
        parse_hf_source("hf:x:train?revision=main")
