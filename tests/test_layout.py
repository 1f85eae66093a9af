"""The layout rules (README "Architecture"), checked on the source: imports, cycles, sizes, names.

Every import statement counts, inside functions and ``if TYPE_CHECKING:`` blocks too: a lazy
import still couples two designs. Static analysis (``ast``), so nothing is imported to check it.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIRS = PYPROJECT["tool"]["setuptools"]["package-dir"]  # package -> folder
BARE = ("service", "export", "training", "benchmarks")  # folders that are not import names
SOURCE_TREES = ("rewardserve", *BARE, "tests", "examples", "scripts")
MAX_LINES = 300
SERVICE = "rewardserve.service"
FOLDERS = ("edge", "engine", "backends", "client", "jobs", "cli")


def _module_name(path: Path) -> str | None:
    """The import name of a file under one of the package folders (None outside them)."""
    rel = path.relative_to(ROOT)
    # the deepest package whose folder holds the file
    for package, folder in sorted(PACKAGE_DIRS.items(), key=lambda kv: -len(kv[0])):
        try:
            inner = rel.relative_to(folder)
        except ValueError:
            continue
        parts = [package, *inner.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        return ".".join(parts)
    return None


def _generated(path: Path) -> bool:
    return "_pb2" in path.name


@cache
def package_modules() -> dict[str, Path]:
    """Every module of the installed packages: import name -> file."""
    out = {}
    for folder in PACKAGE_DIRS.values():
        for path in (ROOT / folder).rglob("*.py"):
            name = _module_name(path)
            if name is not None and "results" not in path.parts:
                out[name] = path
    return out


def _imports(path: Path, module: str | None) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in a file, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                if module is None:
                    continue
                parent = module.split(".")
                drop = node.level - (1 if is_package else 0)
                parent = parent[: len(parent) - drop] if drop else parent
                base = ".".join(parent + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield (sub if sub in package_modules() else base), node.lineno


@cache
def graph() -> dict[str, set[str]]:
    """Import edges between the project's modules."""
    mods = package_modules()
    return {name: {m for m, _ in _imports(path, name) if m in mods and m != name} for name, path in mods.items()}


def _source_files() -> Iterator[Path]:
    for tree in SOURCE_TREES:
        yield from (p for p in (ROOT / tree).rglob("*.py") if "results" not in p.parts)


def _folder_of(module: str) -> str | None:
    """``edge`` for rewardserve.service.edge.x; ``root`` for rewardserve.service.x; None elsewhere."""
    parts = module.split(".")
    if parts[:2] != ["rewardserve", "service"] or len(parts) < 3:
        return None
    return parts[2] if parts[2] in FOLDERS else "root"


def test_pyproject_lists_every_package():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {name for name, path in package_modules().items() if path.name == "__init__.py"}
    assert listed == found, f"missing from pyproject: {found - listed}; listed but absent: {listed - found}"


def test_no_file_imports_the_bare_folder_names():
    bad = [f"{p.relative_to(ROOT)}:{line}: {m}" for p in _source_files() for m, line in _imports(p, _module_name(p))
           if m.split(".")[0] in BARE]
    assert not bad, "import these as rewardserve.<name>: " + ", ".join(bad)


def test_no_doc_or_script_runs_the_bare_folder_names():
    pattern = re.compile(r"-m\s+(service|export|training|benchmarks)\b")
    texts = [*ROOT.rglob("*.md"), *ROOT.glob("scripts/*"), *ROOT.glob(".ci/*"), ROOT / "Dockerfile", *ROOT.glob("deploy/**/*.y*ml")]
    bad = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in texts if ".venv" not in p.parts and p.is_file()
           for m in pattern.finditer(p.read_text(errors="replace"))]
    assert not bad, bad


ALLOWED = {  # folder -> service folders it may import (the service root is allowed to all)
    "root": set(),
    "backends": set(),
    "engine": {"backends"},
    "edge": {"engine", "backends"},
    "client": set(),
    "jobs": {"client", "engine", "backends"},
    "cli": {"edge", "engine", "backends", "client", "jobs"},
}


def test_service_layering():
    bad = []
    for module, deps in graph().items():
        folder = _folder_of(module)
        if folder is None:
            continue
        for dep in deps:
            target = _folder_of(dep)
            if target not in (None, "root", folder) and target not in ALLOWED[folder]:
                bad.append(f"{module} -> {dep}")
    assert not bad, "imports across the service's layers: " + ", ".join(sorted(bad))


def test_only_the_contract_and_service_on_the_serving_path():
    """Nothing under rewardserve.service imports training, export or benchmarks (they need torch)."""
    bad = [f"{m} -> {d}" for m, deps in graph().items() if m.startswith(SERVICE + ".")
           for d in deps if d.split(".")[1] in ("training", "export", "benchmarks")]
    assert not bad, bad


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        comp.append(m)
                        if m == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
            elif nxt not in index:
                index[nxt] = low[nxt] = counter[0]
                counter[0] += 1
                stack.append(nxt)
                on_stack.add(nxt)
                work.append((nxt, iter(sorted(edges.get(nxt, ())))))
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert not _cycles(graph()), _cycles(graph())


@pytest.mark.parametrize("tree", ["packages", "tests"])
def test_no_module_over_the_size_limit(tree):
    files = package_modules().values() if tree == "packages" else (ROOT / "tests").rglob("*.py")
    big = {str(p.relative_to(ROOT)): n for p in files if not _generated(p)
           and (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_no_module_named_like_the_standard_library():
    clash = sorted(name for name in package_modules() if name.rsplit(".", 1)[-1] in sys.stdlib_module_names)
    assert not clash, clash
