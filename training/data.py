"""Loaders for every preference and classification format users bring.

Each loader returns plain dataclasses and raises :class:`DataError` naming file, line and
field for bad input. Texts are formatted here, once, with :mod:`rewardserve.formatting`, so
training sees exactly what the service will format at request time.

Formats (JSONL unless said otherwise; one record per line):

* pairs with a prompt: ``{"prompt", "chosen", "rejected"}`` (optional ``margin``);
* whole dialogues, Anthropic HH style: ``{"chosen", "rejected"}``, split into the shared
  prompt and the two differing responses;
* conversations: ``chosen``/``rejected`` (and optionally ``prompt``) as lists of
  ``{"role", "content"}`` messages, rendered with the chat template;
* K-way rankings: ``{"prompt", "completions": [...], "ranks": [...]}`` (1 = best, ties
  allowed), which become every pair of differently ranked completions;
* classification: CSV or JSONL with a text column, a label column and a label mapping;
* Hugging Face datasets, named ``hf:NAME[:SPLIT][?data_dir=DIR]`` (needs network).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardserve.formatting import FormatError, Message, format_pair, render_chat

logger = logging.getLogger(__name__)

HH_ASSISTANT = "\n\nAssistant:"


class DataError(ValueError):
    """Bad training or evaluation data; the message names file, line and field."""


@dataclass(frozen=True)
class PreferenceGroup:
    """Texts for one prompt and the comparisons among them.

    ``pairs`` holds (better, worse) indices into ``texts``; a plain preference pair is a group
    of two texts with the single comparison (0, 1). Rankings keep all K completions of a prompt
    in one group, so each completion is scored once (InstructGPT-style training).
    """

    texts: tuple[str, ...]
    pairs: tuple[tuple[int, int], ...]
    margins: tuple[float, ...]


@dataclass(frozen=True)
class LabelledText:
    """A text and its class index."""

    text: str
    label: int


@dataclass
class LoadReport:
    """What a loader read, made and skipped (and why)."""

    records: int = 0
    skipped: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)

    def log(self, source: str) -> None:
        """Log the counts, including every skip reason."""
        logger.info("%s: %d records read", source, self.records)
        for reason, n in sorted(self.skipped.items()):
            logger.warning("%s: skipped %d records: %s", source, n, reason)
        for note, n in sorted(self.notes.items()):
            logger.info("%s: %d records %s", source, n, note)


# --------------------------------------------------------------------------- reading
def read_records(source: str | Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """Yield (source, line number, record) from a JSONL or CSV file or an ``hf:`` dataset."""
    src = str(source)
    if src.startswith("hf:"):
        yield from _read_hf(src)
        return
    path = Path(src)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            for i, row in enumerate(csv.DictReader(f), start=2):  # line 1 is the header
                yield str(path), i, row
        return
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{i}: invalid JSON: {e.msg} (column {e.colno})") from e
            if not isinstance(rec, dict):
                raise DataError(f"{path}:{i}: expected a JSON object, got {type(rec).__name__}")
            yield str(path), i, rec


def parse_hf_source(src: str) -> tuple[str, str, str | None]:
    """Split ``hf:NAME[:SPLIT][?data_dir=DIR]`` into (name, split, data_dir)."""
    body, _, query = src[3:].partition("?")
    name, _, split = body.partition(":")
    data_dir = None
    if query:
        key, sep, value = query.partition("=")
        if key != "data_dir" or not sep or not value:
            raise DataError(f"{src}: only ?data_dir=DIR is understood after the dataset name")
        data_dir = value
    if not name:
        raise DataError(f"{src}: expected hf:NAME[:SPLIT][?data_dir=DIR]")
    return name, split or "train", data_dir


def _read_hf(src: str) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """Read a Hugging Face dataset ``hf:NAME[:SPLIT][?data_dir=DIR]`` (for users who are online)."""
    import datasets

    name, split, data_dir = parse_hf_source(src)
    ds = datasets.load_dataset(name, data_dir=data_dir, split=split)
    for i, rec in enumerate(ds, start=1):
        yield src, i, dict(rec)


def fingerprint(sources: list[str | Path], recipe: dict[str, Any]) -> str:
    """Return a sha256 over the data files' bytes and the training recipe."""
    h = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode())
    for s in sources:
        p = Path(str(s))
        if p.is_file():
            with p.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        else:
            h.update(str(s).encode())
    return h.hexdigest()


# ------------------------------------------------------------------------ preferences
def split_dialogue_pair(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Split two HH dialogues into (shared prompt, chosen response, rejected response).

    The prompt ends just before the last ``\\n\\nAssistant:`` that both texts share up to the
    point where they first differ; everything after it is the response. When the two diverge
    before any Assistant turn, the prompt is empty and the responses are the whole texts, so
    nothing is lost: ``prompt + response`` always gives back the original dialogue.
    """
    n = 0
    limit = min(len(chosen), len(rejected))
    while n < limit and chosen[n] == rejected[n]:
        n += 1
    cut = chosen.rfind(HH_ASSISTANT, 0, n + len(HH_ASSISTANT) - 1)
    # The marker must lie wholly inside the shared prefix.
    while cut >= 0 and cut + len(HH_ASSISTANT) > n:
        cut = chosen.rfind(HH_ASSISTANT, 0, cut)
    if cut < 0:
        return "", chosen, rejected
    return chosen[:cut], chosen[cut:], rejected[cut:]


def _messages(value: Any, where: str) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: must be a non-empty list of {{role, content}} messages")
    out = []
    for j, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise DataError(f"{where}[{j}]: must be an object with string 'role' and 'content'")
        out.append(Message(m["role"], m["content"]))
    return tuple(out)


def _text(rec: dict[str, Any], key: str, where: str) -> str:
    if key not in rec:
        raise DataError(f"{where}: missing field '{key}'")
    v = rec[key]
    if not isinstance(v, str):
        raise DataError(f"{where}: field '{key}' must be a string, got {type(v).__name__}")
    if not v.strip():
        raise DataError(f"{where}: field '{key}' is empty")
    return v


def _response_text(rec: dict[str, Any], key: str, prompt: Any, where: str, fmt: TextFormatter) -> str:
    value = rec.get(key)
    if isinstance(value, list):  # conversational: prompt messages + response messages
        msgs = _messages(value, f"{where}: field '{key}'")
        if prompt is not None:
            msgs = _messages(prompt, f"{where}: field 'prompt'") + msgs
        return fmt.chat(msgs, where)
    response = _text(rec, key, where)
    if prompt is None:
        return response
    if isinstance(prompt, list):
        return fmt.chat(_messages(prompt, f"{where}: field 'prompt'") + (Message("assistant", response),), where)
    if not isinstance(prompt, str):
        raise DataError(f"{where}: field 'prompt' must be a string or a list of messages")
    return fmt.pair(prompt, response)


@dataclass(frozen=True)
class TextFormatter:
    """Formats prompts, responses and chats the way the model's ``reward.json`` will say."""

    prompt_template: str
    chat_template: str

    def pair(self, prompt: str, response: str) -> str:
        """Join prompt and response with the template."""
        return format_pair(self.prompt_template, prompt, response)

    def chat(self, messages: tuple[Message, ...], where: str) -> str:
        """Render messages with the chat template, naming the record on failure."""
        try:
            return render_chat(self.chat_template, messages)
        except FormatError as e:
            raise DataError(f"{where}: {e}") from e


def load_preferences(
    source: str | Path, fmt: TextFormatter, skip_invalid: bool = False
) -> tuple[list[PreferenceGroup], LoadReport]:
    """Load pairs, HH dialogues, conversations or K-way rankings as preference groups.

    With ``skip_invalid`` a bad record is skipped and counted instead of raising.
    """
    groups: list[PreferenceGroup] = []
    report = LoadReport()
    for src, line, rec in read_records(source):
        where = f"{src}:{line}"
        report.records += 1
        try:
            group = _parse_preference(rec, where, fmt, report)
        except DataError as e:
            if not skip_invalid:
                raise
            report.skipped[str(e).split(": ", 1)[1]] += 1
            continue
        if group is not None:
            groups.append(group)
    report.log(str(source))
    if not groups:
        raise DataError(f"{source}: no usable preference records")
    return groups, report


def _parse_preference(
    rec: dict[str, Any], where: str, fmt: TextFormatter, report: LoadReport
) -> PreferenceGroup | None:
    if "completions" in rec or "ranks" in rec:
        return _parse_ranking(rec, where, fmt, report)
    margin = _margin(rec, where)
    prompt = rec.get("prompt")
    if prompt is None and isinstance(rec.get("chosen"), str) and isinstance(rec.get("rejected"), str):
        chosen, rejected = _text(rec, "chosen", where), _text(rec, "rejected", where)
        if chosen == rejected:
            raise DataError(f"{where}: fields 'chosen' and 'rejected' are identical")
        p, _, _ = split_dialogue_pair(chosen, rejected)
        report.notes["split as HH dialogues" if p else "kept whole (no shared Assistant turn)"] += 1
        # prompt + response is the original dialogue, so the texts are the dialogues themselves.
        return PreferenceGroup((chosen, rejected), ((0, 1),), (margin,))
    chosen = _response_text(rec, "chosen", prompt, where, fmt)
    rejected = _response_text(rec, "rejected", prompt, where, fmt)
    if chosen == rejected:
        raise DataError(f"{where}: fields 'chosen' and 'rejected' are identical")
    return PreferenceGroup((chosen, rejected), ((0, 1),), (margin,))


def _margin(rec: dict[str, Any], where: str) -> float:
    m = rec.get("margin", 0.0)
    if isinstance(m, bool) or not isinstance(m, int | float):
        raise DataError(f"{where}: field 'margin' must be a number, got {m!r}")
    return float(m)


def ranking_to_pairs(ranks: list[int]) -> list[tuple[int, int]]:
    """Return every (better, worse) index pair of a ranking (1 = best); ties give no pair."""
    pairs = []
    for i, j in itertools.combinations(range(len(ranks)), 2):
        if ranks[i] < ranks[j]:
            pairs.append((i, j))
        elif ranks[j] < ranks[i]:
            pairs.append((j, i))
    return pairs


def _parse_ranking(
    rec: dict[str, Any], where: str, fmt: TextFormatter, report: LoadReport
) -> PreferenceGroup | None:
    comps, ranks = rec.get("completions"), rec.get("ranks")
    if not isinstance(comps, list) or len(comps) < 2:
        raise DataError(f"{where}: field 'completions' must be a list of at least 2 completions")
    if not isinstance(ranks, list) or len(ranks) != len(comps):
        got = len(ranks) if isinstance(ranks, list) else type(ranks).__name__
        raise DataError(f"{where}: field 'ranks' must list one rank per completion ({len(comps)}), got {got}")
    for j, r in enumerate(ranks):
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise DataError(f"{where}: field 'ranks[{j}]' must be an integer >= 1, got {r!r}")
    prompt = rec.get("prompt")
    texts = []
    for j, c in enumerate(comps):
        if not isinstance(c, str) or not c.strip():
            raise DataError(f"{where}: field 'completions[{j}]' must be a non-empty string")
        texts.append(_response_text({"c": c}, "c", prompt, where, fmt))
    if len(set(texts)) != len(texts):
        raise DataError(f"{where}: field 'completions' holds the same completion twice")
    pairs = ranking_to_pairs(ranks)
    ties = len(comps) * (len(comps) - 1) // 2 - len(pairs)
    if ties:
        report.skipped["tied completions (no preference)"] += ties
    if not pairs:
        return None
    return PreferenceGroup(tuple(texts), tuple(pairs), (_margin(rec, where),) * len(pairs))


def flatten_pairs(groups: list[PreferenceGroup]) -> list[PreferenceGroup]:
    """Split groups into one group per comparison (standard pairwise training)."""
    out = []
    for g in groups:
        for (i, j), m in zip(g.pairs, g.margins, strict=True):
            out.append(PreferenceGroup((g.texts[i], g.texts[j]), ((0, 1),), (m,)))
    return out


# --------------------------------------------------------------------- classification
def parse_label_map(spec: str | dict[str, str] | None) -> dict[str, str] | None:
    """Parse ``"0=toxic,1=toxic,2=non_toxic"`` into {raw label: class name}."""
    if spec is None or isinstance(spec, dict):
        return spec
    out: dict[str, str] = {}
    for part in spec.split(","):
        raw, sep, name = part.partition("=")
        if not sep or not raw.strip() or not name.strip():
            raise DataError(f"label map: expected RAW=NAME pairs separated by commas, got {part!r}")
        out[raw.strip()] = name.strip()
    return out


def class_names(label_map: dict[str, str] | None, raw_labels: list[str]) -> list[str]:
    """Class names in index order: the map's names in order of first appearance, else sorted raw labels."""
    if label_map:
        return list(dict.fromkeys(label_map.values()))
    return sorted(set(raw_labels))


def load_classification(
    source: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    label_map: dict[str, str] | None = None,
    labels: list[str] | None = None,
) -> tuple[list[LabelledText], list[str], LoadReport]:
    """Load labelled texts; return them with the class names in index order.

    ``label_map`` maps raw labels to class names (several raw labels may share one name);
    ``labels`` fixes the class order (e.g. the trained model's, for evaluation).
    """
    rows: list[tuple[str, str, str]] = []
    report = LoadReport()
    for src, line, rec in read_records(source):
        where = f"{src}:{line}"
        report.records += 1
        text = _text(rec, text_column, where)
        if label_column not in rec or rec[label_column] is None or str(rec[label_column]).strip() == "":
            raise DataError(f"{where}: missing field '{label_column}'")
        raw = str(rec[label_column]).strip()
        if label_map is not None and raw not in label_map:
            raise DataError(f"{where}: field '{label_column}': unknown label {raw!r} (known: {sorted(label_map)})")
        rows.append((where, text, label_map[raw] if label_map else raw))
    if not rows:
        raise DataError(f"{source}: no records")
    names = labels or class_names(label_map, [r[2] for r in rows])
    index = {n: i for i, n in enumerate(names)}
    out = []
    for where, text, name in rows:
        if name not in index:
            raise DataError(f"{where}: field '{label_column}': unknown label {name!r} (known: {names})")
        out.append(LabelledText(text, index[name]))
    report.log(str(source))
    return out, names, report
