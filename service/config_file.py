"""Reading ``rewardserve serve --config FILE`` (TOML or JSON) and checking its keys."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (``.toml``) or JSON config file; keys may use - or _."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {path}: not found")
    try:
        if path.suffix == ".toml":
            import tomllib  # Python 3.11+; on 3.10 use a JSON file

            data = tomllib.loads(path.read_text())
        else:
            data = json.loads(path.read_text())
    except (ValueError, ImportError) as e:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise ValueError(f"config file {path}: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"config file {path}: must hold a table/object of settings")
    return {k.replace("-", "_"): v for k, v in data.items()}


def check_keys(values: Mapping[str, Any], known: set[str], source: str) -> Mapping[str, Any]:
    """Return ``values``; raise ValueError naming the first key that is not a known setting."""
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{source}: unknown setting {unknown[0]!r} (known: {sorted(known)})")
    return values
