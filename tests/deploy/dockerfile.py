"""Read a Dockerfile's instructions (enough of the format for the tests of deploy files).

Handles line continuations, comments, build stages, exec-form (JSON) commands, ``ENV`` in its
``KEY=VALUE`` form and ``HEALTHCHECK [OPTIONS] CMD [...]``.

Example::

    df = Dockerfile.read(REPO / "Dockerfile")
    df.final.exec_form("ENTRYPOINT")    # ['rewardserve', 'serve']
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Stage:
    """One build stage: its FROM line, name and instructions as (KEYWORD, arguments)."""

    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        """Arguments of every instruction ``keyword`` in this stage, in order."""
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def exec_form(self, keyword: str) -> list[str]:
        """The JSON (exec) form of ENTRYPOINT/CMD; ValueError for the shell form."""
        args = self.last(keyword)
        if args is None:
            return []
        try:
            value = json.loads(args)
        except json.JSONDecodeError as e:
            raise ValueError(f"{keyword} must use the exec (JSON) form so signals reach the server: {args}") from e
        return list(value)

    def env(self) -> dict[str, str]:
        """Variables set by ENV (``KEY=VALUE`` form) in this stage."""
        out = {}
        for args in self.all("ENV"):
            for pair in shlex.split(args):
                key, sep, value = pair.partition("=")
                if not sep:
                    raise ValueError(f"use ENV KEY=VALUE, got {args!r}")
                out[key] = value
        return out

    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        """HEALTHCHECK options (``--interval`` ...) and its exec-form command."""
        args = self.last("HEALTHCHECK")
        if args is None:
            return {}, []
        options, sep, command = args.partition(" CMD ")
        if not sep:
            raise ValueError(f"HEALTHCHECK without CMD: {args!r}")
        opts = dict(o.lstrip("-").split("=", 1) for o in options.split())
        return opts, json.loads(command)


@dataclass
class Dockerfile:
    """The global ARGs and build stages of a Dockerfile."""

    args: dict[str, str]
    stages: list[Stage]
    comments: list[str]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        """Parse ``path``."""
        args: dict[str, str] = {}
        stages: list[Stage] = []
        comments: list[str] = []
        for line in _logical_lines(path.read_text(), comments):
            keyword, _, rest = line.partition(" ")
            keyword, rest = keyword.upper(), rest.strip()
            if keyword == "FROM":
                words = rest.split()
                name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
                stages.append(Stage(words[0], name))
            elif not stages:
                if keyword != "ARG":
                    raise ValueError(f"only ARG may come before the first FROM, got {line!r}")
                key, _, value = rest.partition("=")
                args[key] = value
            else:
                stages[-1].instructions.append((keyword, rest))
        return cls(args, stages, comments)


def _logical_lines(text: str, comments: list[str]) -> list[str]:
    """Join continued lines; collect comment lines into ``comments``."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#"):
            comments.append(stripped)
            continue
        if not stripped and not current:
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(" ".join((current + stripped).split()))
        current = ""
    if current:
        lines.append(" ".join(current.split()))
    return lines
