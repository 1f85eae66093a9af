"""``rewardserve filter``: the kept/rejected split equals solo scores, via a server and in-process;
streaming with a bounded number of requests in flight; bad lines."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from rewardserve.service.client import RewardClient
from rewardserve.service.domain import item_from_obj
from rewardserve.service.jobs.streaming import (
    ScoreSettings,
    chunked,
    local_scorer,
    read_items,
    score_in_order,
)

from rewardserve.cli import main
from tests.service.conftest import ServerThread, make_config

pytestmark = pytest.mark.e2e

RECORDS = [
    {"id": 0, "text": "have a lovely day everyone"},
    {"id": 1, "text": "you are a stupid idiot"},
    {"id": 2, "prompt": "Tell me about bread.", "response": "Mix flour and water, then bake."},
    {"id": 3, "text": "the weather is nice today"},
    {"id": 4, "prompt": "Insult me.", "response": "shut up you ugly loser"},
    {"id": 5, "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]},
    {"id": 6, "text": "what the hell is this crap"},
    {"id": 7, "text": "thanks for the help with my homework"},
    {"id": 8, "text": "0123456789 !?"},
    {"id": 9, "prompt": "", "response": "I hate you all"},
    {"id": 10, "text": "damn, the dog ate my homework"},
]
TOXIC_IDS = [1, 4, 6, 9, 10]  # they hold words of tests/word_reward.py's TOXIC list


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def server(word_toxicity_bundle, bundles):
    """A server of the word-toxicity classifier (`toxicity`, the default) beside a random pairwise model."""
    models = {"toxicity": word_toxicity_bundle, "pairwise": bundles["pairwise"]}
    s = ServerThread(make_config(models, names=("toxicity", "pairwise"), metrics_port=None))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def solo(server) -> list[float]:
    """P(toxic) of each record scored alone."""
    with RewardClient(server.target) as client:
        return [client.score([item_from_obj({k: v for k, v in r.items() if k != "id"})]).scores[0].probabilities[0]
                for r in RECORDS]


@pytest.mark.parametrize("where", ["server", "in_process"])
def test_split_matches_solo_scores(tmp_path, server, word_toxicity_bundle, solo, where, capsys):
    assert [i for i, p in enumerate(solo) if p >= 0.5] == TOXIC_IDS  # the fixture means what it says
    source = write_jsonl(tmp_path / "gen.jsonl", RECORDS)
    target = ["--address", server.target, "--model", "toxicity"] if where == "server" else \
        ["--bundle", str(word_toxicity_bundle), "--precision", "fp32"]
    assert main(["filter", str(source), "--threshold", "0.5", *target, "--batch-size", "3",
                 "--max-in-flight", "2", "--summary", str(tmp_path / "summary.json")]) == 0
    kept, rejected = read_jsonl(tmp_path / "gen.kept.jsonl"), read_jsonl(tmp_path / "gen.rejected.jsonl")
    assert [r["id"] for r in kept] == [i for i in range(len(RECORDS)) if i not in TOXIC_IDS]
    assert [r["id"] for r in rejected] == TOXIC_IDS
    for r in kept + rejected:
        original = RECORDS[r["id"]]
        assert {k: r[k] for k in original} == original  # the record itself is unchanged
        assert r["rewardserve"]["label"] == "toxic"
        assert r["rewardserve"]["prob"] == pytest.approx(solo[r["id"]], abs=1e-5)
        assert r["rewardserve"]["probabilities"]["toxic"] == pytest.approx(solo[r["id"]], abs=1e-5)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["records"], summary["kept"], summary["rejected"]) == (11, 6, 5)
    assert summary["quantiles"]["min"] == pytest.approx(min(solo), abs=1e-5)
    assert summary["quantiles"]["max"] == pytest.approx(max(solo), abs=1e-5)
    assert summary["quantiles"]["p50"] == pytest.approx(sorted(solo)[5], abs=1e-3)  # bins of 1/1000
    assert sum(summary["histogram"]) == 11 and summary["histogram"][0] == 6
    out = capsys.readouterr().out
    assert "kept when P(toxic) < 0.5" in out and "kept             6" in out and "p50" in out


def test_label_field_names_and_response_only(tmp_path, server):
    rows = [{"gen": "you ugly loser", "q": "Be nice."}, {"gen": "Hello!", "q": "damn hell crap"}]
    source = write_jsonl(tmp_path / "custom.jsonl", rows)
    kept, rejected = tmp_path / "k.jsonl", tmp_path / "r.jsonl"
    assert main(["filter", str(source), "--address", server.target, "--label", "toxic", "--threshold", "0.5",
                 "--response-field", "gen", "--prompt-field", "q", "--response-only", "--kept", str(kept),
                 "--rejected", str(rejected)]) == 0
    # the response alone was scored: the toxic prompt does not reject the second record
    assert [r["gen"] for r in read_jsonl(kept)] == ["Hello!"]
    assert [r["gen"] for r in read_jsonl(rejected)] == ["you ugly loser"]
    with RewardClient(server.target) as client:
        alone = client.score(["you ugly loser"]).scores[0].probabilities[0]
    assert read_jsonl(rejected)[0]["rewardserve"]["prob"] == pytest.approx(alone, abs=1e-6)
    # scored as prompt + response instead, the prompt's words count
    assert main(["filter", str(source), "--address", server.target, "--threshold", "0.5", "--response-field",
                 "gen", "--prompt-field", "q", "--kept", str(kept), "--rejected", str(rejected)]) == 0
    assert read_jsonl(kept) == [] and len(read_jsonl(rejected)) == 2


def test_bad_lines_name_file_and_line(tmp_path, server, capsys):
    bad = write_jsonl(tmp_path / "bad.jsonl", [RECORDS[0], {"body": "no text field"}, "not json", RECORDS[1],
                                               {"text": ""}])
    args = ["filter", str(bad), "--address", server.target, "--threshold", "0.5"]
    assert main(args) == 2
    assert f"{bad}: line 2: needs a 'text' field" in capsys.readouterr().err
    assert main([*args, "--skip-bad", "--summary", str(tmp_path / "s.json")]) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert (summary["records"], summary["kept"], summary["bad_lines_skipped"]) == (2, 1, 3)
    assert main([*args, "--skip-bad", "--text-field", "body"]) == 0  # configurable field: line 2 is fine now
    assert main([*args, "--label", "nope"]) == 2
    assert "label 'nope' is not a label of 'toxicity'" in capsys.readouterr().err
    assert main([*args, "--model", "pairwise"]) == 2
    assert "needs a classifier" in capsys.readouterr().err
    assert main(["filter", str(bad), "--threshold", "0.5"]) == 2
    assert "exactly one of --address (a server) or --bundle" in capsys.readouterr().err
    assert main(["filter", str(tmp_path / "missing.jsonl"), "--address", server.target]) == 2


async def test_in_flight_bound_on_a_long_file(tmp_path, word_toxicity_bundle):
    """4,000 lines, chunks of 16, at most 3 requests in flight: reading never runs ahead of that."""
    path = tmp_path / "many.jsonl"
    with open(path, "w") as f:
        for i in range(4000):
            f.write(json.dumps({"text": f"line number {i} " + "word " * (i % 7)}) + "\n")
    pulled, in_flight, peak, written = 0, 0, 0, 0

    def counted():
        nonlocal pulled
        for record in read_items(str(path), item_from_obj):
            pulled += 1
            yield record

    async with local_scorer(word_toxicity_bundle, ScoreSettings(), precision="fp32") as scorer:

        async def score(items):
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                return await scorer.score(items)
            finally:
                in_flight -= 1

        async for chunk, scores in score_in_order(chunked(counted(), 16), score, max_in_flight=3):
            assert len(scores) == len(chunk)
            assert chunk[0].lineno == written + 1  # in input order
            written += len(chunk)
            assert pulled - written <= 2 * 16  # read ahead: the other in-flight chunks only
    assert written == pulled == 4000
    assert peak == 3  # the bound was reached (so it was the bound that held reading back)


def test_streams_a_pipe_before_it_ends(tmp_path, word_toxicity_bundle):
    """Input from a FIFO: output appears while the writer still holds the rest back."""
    fifo = tmp_path / "in.jsonl"
    os.mkfifo(fifo)
    kept, rejected = tmp_path / "k.jsonl", tmp_path / "r.jsonl"
    seen_before_end = []

    def writer():
        with open(fifo, "w") as f:
            for i in range(40):
                f.write(json.dumps({"text": f"first part {i}"}) + "\n")
            f.flush()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                n = sum(len(p.read_text().splitlines()) for p in (kept, rejected) if p.exists())
                if n >= 8:
                    seen_before_end.append(n)
                    break
                time.sleep(0.05)
            for i in range(40):
                f.write(json.dumps({"text": f"second part {i}"}) + "\n")

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    assert main(["filter", str(fifo), "--bundle", str(word_toxicity_bundle), "--precision", "fp32",
                 "--threshold", "0.5", "--batch-size", "4", "--max-in-flight", "2", "--kept", str(kept),
                 "--rejected", str(rejected)]) == 0
    thread.join(5)
    assert seen_before_end, "no output before the input ended: the file was not streamed"
    assert len(read_jsonl(kept)) + len(read_jsonl(rejected)) == 80
