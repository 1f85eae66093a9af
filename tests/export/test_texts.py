"""Parity texts from data files in every format training reads, and the explicit built-in fallback."""

from __future__ import annotations

import json

import pytest
from rewardserve.export.texts import NoTextsError, load_texts

from rewardserve.bundle import HH_CHAT_TEMPLATE, RewardSpec
from rewardserve.enums import ModelKind, TextFormat
from rewardserve.formatting import Message, render_chat

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
    with pytest.raises(ValueError, match=r"dev.csv:2: needs .* or a text column \[.text., .tweet.\]"):
        load_texts(path, SPEC, 10)


@pytest.mark.parametrize(("line", "message"), [("{oops", "invalid JSON"), ('["x"]', "expected a JSON object"),
                                               ('{"body": "x"}', "needs 'chosen'/'rejected'")])
def test_bad_jsonl_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "dev.jsonl"
    path.write_text(json.dumps({"text": "fine"}) + "\n" + line + "\n")
    with pytest.raises(ValueError) as e:
        load_texts(path, SPEC, 10)
    assert f"{path}:2" in str(e.value) and message in str(e.value)


def _jsonl(tmp_path, rows, name="dev.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_hh_dialogues_stay_whole_pairs(tmp_path):
    chosen = "\n\nHuman: hi\n\nAssistant: hello, how can I help?"
    rejected = "\n\nHuman: hi\n\nAssistant: go away"
    texts = load_texts(_jsonl(tmp_path, [{"chosen": chosen, "rejected": rejected}]), SPEC, 10)
    assert texts.paired and texts.texts == [chosen, rejected]


def test_conversations_are_rendered_with_the_chat_template_not_repr(tmp_path):
    prompt = [{"role": "user", "content": "hi"}]
    row = {"prompt": prompt, "chosen": [{"role": "assistant", "content": "hello!"}],
           "rejected": [{"role": "assistant", "content": "no."}]}
    texts = load_texts(_jsonl(tmp_path, [row]), SPEC, 10)
    want = [render_chat(HH_CHAT_TEMPLATE, (Message("user", "hi"), Message("assistant", reply)))
            for reply in ("hello!", "no.")]
    assert texts.paired and texts.texts == want
    assert texts.texts[0] == "\n\nHuman: hi\n\nAssistant: hello!"
    assert not any("{'role'" in t or "[{" in t for t in texts.texts)


def test_rankings_give_every_ranked_pair_best_first(tmp_path):
    row = {"prompt": "p ", "completions": ["ok", "best", "worst"], "ranks": [2, 1, 3]}
    texts = load_texts(_jsonl(tmp_path, [row]), SPEC, 10)
    q = "Q: p  A: "
    assert texts.paired
    # training's comparisons in its order: (best, ok), (ok, worst), (best, worst)
    assert texts.texts == [q + "best", q + "ok", q + "ok", q + "worst", q + "best", q + "worst"]
    assert load_texts(_jsonl(tmp_path, [row]), SPEC, 5).texts == texts.texts[:4]  # whole pairs only


def test_classification_jsonl_and_the_trained_text_column(tmp_path):
    rows = [{"text": "first", "label": "a"}, {"text": "second", "label": "b"}, {"text": "", "label": "a"},
            {"text": "third", "label": "b"}]
    assert load_texts(_jsonl(tmp_path, rows), SPEC, 10).texts == ["first", "second"]  # an even count
    csv_path = tmp_path / "dev.csv"
    csv_path.write_text("body,text,label\nB1,T1,0\nB2,T2,1\n")
    assert load_texts(csv_path, SPEC, 10).texts == ["T1", "T2"]
    assert load_texts(csv_path, SPEC, 10, text_column="body").texts == ["B1", "B2"]


def test_prompt_response_records_and_txt(tmp_path):
    rows = [{"prompt": "hi", "response": "hello"}, {"prompt": "hi", "response": "bye"}]
    assert load_texts(_jsonl(tmp_path, rows), SPEC, 10).texts == ["Q: hi A: hello", "Q: hi A: bye"]
    txt = tmp_path / "texts.txt"
    txt.write_text("one\n\ntwo\nthree\n")
    assert load_texts(txt, SPEC, 10).texts == ["one", "two"]


def test_bad_preference_records_name_file_line_and_field(tmp_path):
    path = _jsonl(tmp_path, [{"chosen": "a", "rejected": "b"}, {"completions": ["x", "y"], "ranks": [1]}])
    with pytest.raises(ValueError, match=rf"{path}:2: field 'ranks' must list one rank per completion"):
        load_texts(path, SPEC, 10)


def test_no_texts_needs_the_explicit_builtin_option():
    with pytest.raises(NoTextsError, match=r"no parity texts: give a data file .* or ask for the 16 built-in"):
        load_texts(None, SPEC, 64)
    texts = load_texts(None, SPEC, 64, builtin=True)
    assert texts.source == "built-in" and len(texts.texts) == 16 and not texts.paired
