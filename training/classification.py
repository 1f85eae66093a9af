"""Classification data: labelled texts from CSV/JSONL, with a majority label and optional votes.

``label_votes`` (``--label-votes COL=LABEL,...``) reads per-class vote counts, e.g. the
hate-speech data's ``hate_speech``, ``offensive_language`` and ``neither`` columns. Several
columns may feed one class (``hate_speech=toxic,offensive_language=toxic,neither=non_toxic``);
the votes, normalised, are the soft target a classifier trains on and the distribution the
calibration metrics compare against. The hard label is the ``label_column`` (mapped through
``label_map``) when the record has it, else the class with most votes (ties: the first class,
counted in the report).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardserve.training.records import DataError, LoadReport, parse_assignments, read_records, text_field


@dataclass(frozen=True)
class LabelledText:
    """A text, its class index and (with vote columns) its votes per class."""

    text: str
    label: int
    votes: tuple[int, ...] | None = None

    @property
    def soft(self) -> tuple[float, ...] | None:
        """The vote distribution over the classes (``None`` without votes)."""
        if self.votes is None:
            return None
        total = sum(self.votes)
        return tuple(v / total for v in self.votes)


def parse_label_map(spec: str | dict[str, str] | None) -> dict[str, str] | None:
    """Parse ``"0=toxic,1=toxic,2=non_toxic"`` into {raw label: class name}."""
    if spec is None or isinstance(spec, dict):
        return spec
    try:
        return parse_assignments(spec, "label map")
    except DataError as e:
        raise DataError(str(e).replace("KEY=NAME", "RAW=NAME")) from e


def parse_label_votes(spec: str | dict[str, str] | None) -> dict[str, str] | None:
    """Parse ``"hate_speech=toxic,neither=non_toxic"`` into {vote column: class name}."""
    if spec is None or isinstance(spec, dict):
        return spec
    try:
        return parse_assignments(spec, "label votes")
    except DataError as e:
        raise DataError(str(e).replace("KEY=NAME", "COLUMN=LABEL")) from e


def class_names(label_map: dict[str, str] | None, raw_labels: list[str],
                label_votes: dict[str, str] | None = None) -> list[str]:
    """Class names in index order: the map's names in order of first appearance, else sorted raw labels."""
    if label_map:
        names = list(dict.fromkeys(label_map.values()))
        if label_votes and set(label_votes.values()) != set(names):
            raise DataError(f"label votes name the classes {sorted(set(label_votes.values()))}, "
                            f"the label map {sorted(names)}: they must be the same")
        return names
    if label_votes:
        return list(dict.fromkeys(label_votes.values()))
    return sorted(set(raw_labels))


def parse_votes(rec: dict[str, Any], label_votes: dict[str, str], names: list[str], where: str) -> tuple[int, ...]:
    """Sum the record's vote columns per class; raise naming the column for bad counts."""
    votes = [0] * len(names)
    for col, name in label_votes.items():
        if col not in rec:
            raise DataError(f"{where}: missing vote column '{col}'")
        votes[names.index(name)] += _count(rec[col], col, where)
    if sum(votes) == 0:
        raise DataError(f"{where}: vote columns {sorted(label_votes)} sum to zero (no votes)")
    return tuple(votes)


def _count(value: Any, col: str, where: str) -> int:
    if isinstance(value, bool) or value is None:
        raise DataError(f"{where}: vote column '{col}' must be a non-negative integer, got {value!r}")
    if isinstance(value, int):
        n = value
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        n = int(value.strip())
    else:
        raise DataError(f"{where}: vote column '{col}' must be a non-negative integer, got {value!r}")
    if n < 0:
        raise DataError(f"{where}: vote column '{col}' must be a non-negative integer, got {value!r}")
    return n


def load_classification(
    source: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    label_map: dict[str, str] | None = None,
    labels: list[str] | None = None,
    label_votes: dict[str, str] | None = None,
    skip_invalid: bool = False,
) -> tuple[list[LabelledText], list[str], LoadReport]:
    """Load labelled texts; return them with the class names in index order.

    ``label_map`` maps raw labels to class names (several raw labels may share one name);
    ``labels`` fixes the class order (e.g. the trained model's, for evaluation);
    ``label_votes`` maps vote columns to class names; ``skip_invalid`` skips and counts bad
    records instead of raising.
    """
    report = LoadReport()
    vote_names = labels or (class_names(label_map, [], label_votes) if label_votes else None)
    if label_votes and vote_names and not set(label_votes.values()) <= set(vote_names):
        raise DataError(f"label votes name classes {sorted(set(label_votes.values()) - set(vote_names))} "
                        f"the model does not have (its classes: {vote_names})")
    rows: list[tuple[str, str, str | None, tuple[int, ...] | None]] = []
    for src, line, rec in read_records(source):
        where = f"{src}:{line}"
        report.records += 1
        try:
            rows.append(_parse_row(rec, where, text_column, label_column, label_map, label_votes, vote_names))
        except DataError as e:
            if not skip_invalid:
                raise
            report.skip(e)
    if not rows:
        raise DataError(f"{source}: no usable records")
    names = labels or class_names(label_map, [r[2] for r in rows if r[2] is not None], label_votes)
    out = _resolve_labels(rows, names, label_column, skip_invalid, report)
    report.log(str(source))
    if not out:
        raise DataError(f"{source}: no usable records")
    return out, names, report


def _resolve_labels(rows: list, names: list[str], label_column: str, skip_invalid: bool,
                    report: LoadReport) -> list[LabelledText]:
    """Class indices for parsed rows: the named class, or the top vote where the row has no label."""
    index = {n: i for i, n in enumerate(names)}
    out = []
    for where, text, name, votes in rows:
        if name is None:  # no label column: the class with most votes
            label = max(range(len(votes)), key=lambda i: (votes[i], -i))
            if sorted(votes)[-2:] == [votes[label]] * 2:
                report.notes["without a label and with tied votes: first top class taken"] += 1
        elif name not in index:
            e = DataError(f"{where}: field '{label_column}': unknown label {name!r} (known: {names})")
            if not skip_invalid:
                raise e
            report.skip(e)
            continue
        else:
            label = index[name]
        out.append(LabelledText(text, label, votes))
    return out


def _parse_row(rec: dict[str, Any], where: str, text_column: str, label_column: str,
               label_map: dict[str, str] | None, label_votes: dict[str, str] | None,
               vote_names: list[str] | None) -> tuple[str, str, str | None, tuple[int, ...] | None]:
    text = text_field(rec, text_column, where)
    votes = parse_votes(rec, label_votes, vote_names, where) if label_votes else None
    raw = rec.get(label_column)
    if raw is None or str(raw).strip() == "":
        if votes is None:
            raise DataError(f"{where}: missing field '{label_column}'")
        return where, text, None, votes
    raw = str(raw).strip()
    if label_map is not None and raw not in label_map:
        raise DataError(f"{where}: field '{label_column}': unknown label {raw!r} (known: {sorted(label_map)})")
    return where, text, label_map[raw] if label_map else raw, votes
