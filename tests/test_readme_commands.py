"""Every ``rewardserve ...`` command in README.md parses with the real argument parsers."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from rewardserve.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "deploy/README.md", "benchmarks/README.md", "examples/README.md")
SHELL_STOP = re.compile(r"\s(\||&&|;|>|2>|#)\s?")


def commands(text: str) -> list[str]:
    """``rewardserve`` command lines in the fenced shell blocks of a Markdown text (``...`` elisions skipped)."""
    out = []
    for block in _shell_blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ")
            for part in re.split(r"&&|;", line):
                part = SHELL_STOP.split(" " + part.strip() + " ")[0].strip()
                words = part.split()
                while words and ("=" in words[0] and not words[0].startswith("-")):  # VAR=value prefixes
                    words.pop(0)
                if words and words[0].split("/")[-1] == "rewardserve" and len(words) > 1 and "..." not in words:
                    out.append(" ".join(words))
    return out


def _shell_blocks(text: str) -> list[str]:
    """The bodies of fenced blocks that are shell (no language, bash, sh, console)."""
    blocks, current, lang = [], None, ""
    for line in text.splitlines():
        if line.strip().startswith("```"):
            if current is None:
                current, lang = [], line.strip()[3:].strip()
            else:
                if lang in ("", "bash", "sh", "shell", "console"):
                    blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def test_the_docs_have_commands():
    assert len(commands((ROOT / "README.md").read_text())) >= 15


@pytest.mark.parametrize("doc", DOCS)
def test_doc_commands_parse(doc, capsys):
    path = ROOT / doc
    if not path.is_file():
        pytest.skip(f"{doc} does not exist")
    parser = build_parser()
    bad = []
    for command in commands(path.read_text()):
        argv = shlex.split(command)[1:]
        if argv[0] in ("--help", "-h") or "--help" in argv:
            continue
        try:
            parser.parse_args(argv)
        except SystemExit:
            bad.append(f"{command}: {capsys.readouterr().err.strip().splitlines()[-1]}")
    assert not bad, "\n".join(bad)
