"""RewardBench-style accuracy of a served model: ``rewardserve eval --server ADDRESS DATA``.

Reads RewardBench's record formats and scores every completion through the gRPC API (``Score``):

* v1 (``allenai/reward-bench``): ``{"prompt", "chosen", "rejected", "subset", "id"?}``, one string
  each: correct when the chosen completion's reward is above the rejected one's;
* v2 (``allenai/reward-bench-2``): ``chosen`` and ``rejected`` are lists (best-of-N, one chosen
  against three rejected): correct when every chosen completion beats every rejected one. For
  v2's ``Ties`` subset (several chosen) this is that all-correct-above-all-incorrect part only,
  not RewardBench 2's weighted ties score.

Ties count as wrong, as in RewardBench (``chosen > rejected``). A ``prompt`` string is sent with
each completion as a (prompt, response) pair, which the server formats with the model's prompt
template, or with ``chat`` as a user + assistant conversation (the model's chat template); a
``prompt`` that is a message list is always a conversation with the completion appended.

Example::

    with RewardClient("127.0.0.1:50051") as client:
        result = evaluate(read_bench_records("rb.jsonl"), client_scorer(client, model="hh"))
    print(summary_table(result))
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Scorer = Callable[[list[Any]], list[float]]  # items -> one reward each, in order
IN_FLIGHT = 4  # requests in flight while evaluating


@dataclass(frozen=True)
class BenchRecord:
    """One RewardBench prompt: its completions, the subset it counts in, and its format."""

    id: str
    subset: str
    prompt: str | tuple[dict[str, str], ...]
    chosen: tuple[str, ...]
    rejected: tuple[str, ...]
    version: int  # 1: one chosen vs one rejected; 2: lists (best-of-N)


def _completions(value: Any, field: str, where: str) -> tuple[tuple[str, ...], bool]:
    """(completions, was a list); raise ValueError naming the field."""
    if isinstance(value, str):
        return (value,), False
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value), True
    raise ValueError(f"{where}: field '{field}' must be a string or a non-empty list of strings")


def parse_record(obj: Any, where: str) -> BenchRecord:
    """Build a record from one JSON object; raise ValueError naming ``where`` and the field."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: a record must be a JSON object")
    for field in ("prompt", "chosen", "rejected"):
        if field not in obj:
            raise ValueError(f"{where}: missing field '{field}' (RewardBench: prompt, chosen, rejected, subset)")
    prompt = obj["prompt"]
    if isinstance(prompt, list):
        if not all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                   for m in prompt):
            raise ValueError(f"{where}: field 'prompt' as a list must hold {{role, content}} messages")
        prompt = tuple({"role": m["role"], "content": m["content"]} for m in prompt)
    elif not isinstance(prompt, str):
        raise ValueError(f"{where}: field 'prompt' must be a string or a list of messages")
    chosen, chosen_list = _completions(obj["chosen"], "chosen", where)
    rejected, rejected_list = _completions(obj["rejected"], "rejected", where)
    subset = obj.get("subset", "")
    if not isinstance(subset, str):
        raise ValueError(f"{where}: field 'subset' must be a string")
    return BenchRecord(str(obj.get("id", where)), subset or "all", prompt, chosen, rejected,
                       2 if chosen_list or rejected_list else 1)


def read_bench_records(path: str | Path) -> Iterator[BenchRecord]:
    """Records of a JSONL file (one object a line) or a JSON file holding a list of objects."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        if not isinstance(data, list):
            raise ValueError(f"{path}: a .json file must hold a list of records (or use JSONL)")
        for i, obj in enumerate(data):
            yield parse_record(obj, f"{path}: record {i}")
        return
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not JSON ({e.msg})") from None
                yield parse_record(obj, f"{path}:{n}")


def record_items(record: BenchRecord, chat: bool = False) -> list[Any]:
    """The items to score, chosen first then rejected, in the client's item forms."""
    def item(completion: str) -> Any:
        if isinstance(record.prompt, tuple):
            return [*record.prompt, {"role": "assistant", "content": completion}]
        if chat:
            return [{"role": "user", "content": record.prompt}, {"role": "assistant", "content": completion}]
        return (record.prompt, completion)

    return [item(c) for c in (*record.chosen, *record.rejected)]


def is_correct(chosen: Sequence[float], rejected: Sequence[float]) -> bool:
    """Every chosen reward strictly above every rejected one (v1: the one pair)."""
    return min(chosen) > max(rejected)


def _batches(records: Iterable[BenchRecord], batch_items: int) -> Iterator[list[BenchRecord]]:
    """Whole records, about ``batch_items`` completions per batch (one record may exceed it)."""
    batch: list[BenchRecord] = []
    size = 0
    for record in records:
        n = len(record.chosen) + len(record.rejected)
        if batch and size + n > batch_items:
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += n
    if batch:
        yield batch


def evaluate(records: Iterable[BenchRecord], score: Scorer, batch_items: int = 64, chat: bool = False,
             in_flight: int = IN_FLIGHT) -> dict[str, Any]:
    """Score every record; return overall and per-subset accuracy plus one row per record."""
    def run(batch: list[BenchRecord]) -> list[dict[str, Any]]:
        items = [it for r in batch for it in record_items(r, chat)]
        rewards = score(items)
        if len(rewards) != len(items):
            raise RuntimeError(f"the server returned {len(rewards)} rewards for {len(items)} items")
        rows, k = [], 0
        for r in batch:
            c, k = rewards[k:k + len(r.chosen)], k + len(r.chosen)
            j, k = rewards[k:k + len(r.rejected)], k + len(r.rejected)
            rows.append({"id": r.id, "subset": r.subset, "version": r.version, "correct": is_correct(c, j),
                         "chosen_rewards": c, "rejected_rewards": j})
        return rows

    with ThreadPoolExecutor(max(1, in_flight)) as pool:  # map keeps the input order
        rows = [row for part in pool.map(run, _batches(records, batch_items)) for row in part]
    return summarize(rows)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy per subset and overall (over records), and the mean of the subsets' accuracies."""
    by_subset: dict[str, list[bool]] = defaultdict(list)
    for row in rows:
        by_subset[row["subset"]].append(row["correct"])
    subsets = {name: {"accuracy": sum(v) / len(v), "correct": sum(v), "total": len(v)}
               for name, v in sorted(by_subset.items())}
    versions = sorted({row["version"] for row in rows})
    return {
        "records": len(rows),
        "format": "+".join(f"v{v}" for v in versions),
        "accuracy": sum(r["correct"] for r in rows) / len(rows) if rows else None,
        "subset_mean_accuracy": sum(s["accuracy"] for s in subsets.values()) / len(subsets) if subsets else None,
        "subsets": subsets,
        "results": rows,
    }


def client_scorer(client: Any, model: str = "", timeout_s: float | None = None) -> Scorer:
    """A :data:`Scorer` over a :class:`RewardClient` (gRPC ``Score``; rewards as served, not normalised)."""
    def score(items: list[Any]) -> list[float]:
        return [s.reward for s in client.score(items, model=model, timeout_s=timeout_s).scores]

    return score


def summary_table(result: dict[str, Any]) -> str:
    """A fixed-width table: one line per subset, then the overall figures."""
    width = max([len("subset"), *(len(n) for n in result["subsets"])])
    lines = [f"{'subset':<{width}}  accuracy  correct/total"]
    for name, s in result["subsets"].items():
        lines.append(f"{name:<{width}}  {s['accuracy']:8.4f}  {s['correct']}/{s['total']}")
    if result["records"]:
        lines.append(f"{'overall':<{width}}  {result['accuracy']:8.4f}  {result['records']} records "
                     f"({result['format']}); mean over subsets {result['subset_mean_accuracy']:.4f}")
    return "\n".join(lines)
