"""Reading data files record by record: JSONL, CSV and ``hf:`` datasets, with ``file:line`` errors.

Every loader in :mod:`rewardserve.training` reads through :func:`read_records`, so bad input is
reported the same way everywhere: :class:`DataError` naming file, line and field.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class DataError(ValueError):
    """Bad training or evaluation data; the message names file, line and field."""


@dataclass
class LoadReport:
    """What a loader read, made and skipped (and why)."""

    records: int = 0
    skipped: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    judged_items: list = field(default_factory=list)  # several labellers' items (for agreement statistics)

    def skip(self, error: DataError) -> None:
        """Count a skipped record under its reason (the message without ``file:line: ``)."""
        self.skipped[str(error).split(": ", 1)[-1]] += 1

    @property
    def skipped_total(self) -> int:
        """Records skipped for any reason."""
        return sum(self.skipped.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts (recorded in the bundle's metrics)."""
        return {"records": self.records, "skipped": self.skipped_total, "skip_reasons": dict(self.skipped)}

    def log(self, source: str) -> None:
        """Log the counts, including every skip reason."""
        logger.info("%s: %d records read", source, self.records)
        for reason, n in sorted(self.skipped.items()):
            logger.warning("%s: skipped %d records: %s", source, n, reason)
        for note, n in sorted(self.notes.items()):
            logger.info("%s: %d records %s", source, n, note)


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


def parse_assignments(spec: str | dict[str, str] | None, what: str) -> dict[str, str] | None:
    """Parse ``"A=x,B=y"`` into {A: x, B: y}; ``what`` names the option in errors."""
    if spec is None or isinstance(spec, dict):
        return spec
    out: dict[str, str] = {}
    for part in spec.split(","):
        raw, sep, name = part.partition("=")
        if not sep or not raw.strip() or not name.strip():
            raise DataError(f"{what}: expected KEY=NAME pairs separated by commas, got {part!r}")
        if raw.strip() in out:
            raise DataError(f"{what}: {raw.strip()!r} is given twice")
        out[raw.strip()] = name.strip()
    return out


def text_field(rec: dict[str, Any], key: str, where: str) -> str:
    """Return the non-empty string field ``key`` of a record, or raise naming it."""
    if key not in rec:
        raise DataError(f"{where}: missing field '{key}'")
    v = rec[key]
    if not isinstance(v, str):
        raise DataError(f"{where}: field '{key}' must be a string, got {type(v).__name__}")
    if not v.strip():
        raise DataError(f"{where}: field '{key}' is empty")
    return v
