"""``rewardserve eval --server``: RewardBench v1 and v2 records scored through a real server.

The expected accuracy is computed here from the gRPC ``Score`` rewards of each completion, sent
alone; the command must report exactly that, per subset and overall, without importing torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict

import pytest
from rewardserve.service.client import RewardClient
from rewardserve.service.jobs.rewardbench import evaluate, parse_record, read_bench_records

from rewardserve.enums import Precision
from tests.conftest import REPO
from tests.service.conftest import ServerThread, _export, make_config

WORDS = ["the", "cat", "sat", "on", "a", "warm", "mat", "while", "rain", "fell", "over", "old", "town", "roofs", "and", "birds", "sang"]


def _text(i: int, n: int) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n)) + f" #{i}"


V1 = [{"id": f"v1-{i}", "subset": ("alpacaeval-easy", "refusals-dangerous", "math-prm")[i % 3],
       "prompt": f"Question {i}: {_text(i, 4)}?", "chosen": _text(i + 1, 3 + i % 5),
       "rejected": _text(i + 2, 2 + (i * 3) % 7), "chosen_model": "a", "rejected_model": "b"} for i in range(24)]
V2 = [{"id": f"v2-{i}", "subset": ("Factuality", "Focus")[i % 2], "prompt": f"Task {i}: {_text(i, 5)}",
       "chosen": [_text(i + 3, 2 + i % 4)], "rejected": [_text(i + k + 4, 1 + (i + k) % 6) for k in range(3)],
       "num_correct": 1, "num_rejected": 3, "total_completions": 4} for i in range(12)]
V2 += [{"id": "ties-0", "subset": "Ties", "prompt": "Name a prime number.", "chosen": ["2", "3", "5 is prime"],
        "rejected": ["4", "nine"]},
       {"id": "chat-0", "subset": "Focus", "prompt": [{"role": "user", "content": "hi"},
                                                      {"role": "assistant", "content": "hello"},
                                                      {"role": "user", "content": "tell a joke"}],
        "chosen": ["why did the cat sit on the mat"], "rejected": ["no", "mat"]}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    bundle = _export(tmp_path_factory.mktemp("rb"), "pairwise", "bert", "pairwise", (Precision.fp32,))
    s = ServerThread(make_config({"pairwise": bundle}, names=("pairwise",)))
    yield s
    s.stop()


def expected(records: list[dict], target: str, chat: bool = False) -> dict:
    """Per-subset accuracy from solo gRPC Score calls: chosen beats every rejected (all chosen, for ties)."""
    def item(prompt, completion):
        if isinstance(prompt, list):
            return [*prompt, {"role": "assistant", "content": completion}]
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}] if chat \
            else (prompt, completion)

    by_subset = defaultdict(list)
    with RewardClient(target) as client:
        def reward(prompt, completion):
            return client.score([item(prompt, completion)]).scores[0].reward

        for r in records:
            chosen = [r["chosen"]] if isinstance(r["chosen"], str) else r["chosen"]
            rejected = [r["rejected"]] if isinstance(r["rejected"], str) else r["rejected"]
            c = [reward(r["prompt"], x) for x in chosen]
            j = [reward(r["prompt"], x) for x in rejected]
            by_subset[r["subset"]].append(all(a > b for a in c for b in j))
    return {k: sum(v) / len(v) for k, v in by_subset.items()}


def run_cli(tmp_path, server, records, *flags) -> tuple[dict, str]:
    data = tmp_path / "rb.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "out" / "rb.json"
    code = ("import sys; from rewardserve.cli import main; rc = main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules, 'eval --server imported torch'; sys.exit(rc)")
    argv = ["eval", "--server", server.target, str(data), "--out", str(out), "--batch-size", "5", *flags]
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_eval_server_accuracy_is_what_the_score_rewards_imply(tmp_path, server, version):
    records = V1 if version == "v1" else V2
    want = expected(records, server.target)
    result, stdout = run_cli(tmp_path, server, records)
    got = {name: s["accuracy"] for name, s in result["subsets"].items()}
    assert got == pytest.approx(want, abs=1e-12)
    assert result["records"] == len(records) and result["format"] == version and result["model"] == "pairwise"
    assert result["accuracy"] == pytest.approx(sum(r["correct"] for r in result["results"]) / len(records))
    assert 0 < result["accuracy"] < 1, "the fixture should give a mix of right and wrong (else it proves little)"
    for name, s in result["subsets"].items():  # the printed table shows the same figures
        assert f"{s['accuracy']:8.4f}  {s['correct']}/{s['total']}" in next(
            line for line in stdout.splitlines() if line.startswith(name + " "))
    by_id = {r["id"]: r for r in result["results"]}
    assert len(by_id["v2-0" if version == "v2" else "v1-0"]["rejected_rewards"]) == (3 if version == "v2" else 1)


def test_chat_sends_conversations(tmp_path, server):
    result, _ = run_cli(tmp_path, server, V1[:9], "--chat")
    got = {name: s["accuracy"] for name, s in result["subsets"].items()}
    assert got == pytest.approx(expected(V1[:9], server.target, chat=True), abs=1e-12)


def test_the_in_process_evaluate_matches_per_record_rewards(server):
    with RewardClient(server.target) as client:
        result = evaluate((parse_record(r, r["id"]) for r in V2), lambda items: [
            s.reward for s in client.score(items).scores], batch_items=7, in_flight=2)
        ties = next(r for r in result["results"] if r["id"] == "ties-0")
        assert ties["correct"] == (min(ties["chosen_rewards"]) > max(ties["rejected_rewards"]))
        assert [r["id"] for r in result["results"]] == [r["id"] for r in V2]  # input order kept


def test_bad_records_name_the_line_and_field(tmp_path, server):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(V1[0]) + "\n" + json.dumps({"prompt": "p", "chosen": "a"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: missing field 'rejected'"):
        list(read_bench_records(bad))
    bad.write_text(json.dumps({"prompt": "p", "chosen": [], "rejected": "b"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: field 'chosen' must be a string or a non-empty list"):
        list(read_bench_records(bad))
    proc = subprocess.run([sys.executable, "-m", "rewardserve.cli", "eval", "--server", server.target, str(bad)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2 and "field 'chosen'" in proc.stderr
