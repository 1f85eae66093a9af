"""Bad models: each kind of broken bundle, served with ``on_model_error`` fail and skip.

Each breakage is made on a copy of the classifier bundle (symlinks to the original files; a
file to be changed is copied first, so the original is never touched). Then, through the
real ``rewardserve serve`` command:

* ``fail``: a healthy model plus the broken one: exit code 2 and one stderr line naming the
  broken file and the problem, per kind;
* ``skip``: the healthy model plus every broken one in one server: it serves the healthy
  model, lists only it, answers NOT_FOUND for each broken one, logs each problem, and exits 0
  on SIGTERM; with only broken models it exits 2 listing every problem.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
from rewardserve.benchmarks.reliability.common import Section, cli_server
from rewardserve.benchmarks.server_proc import REPO

from rewardserve.v1 import reward_pb2 as pb
from rewardserve.v1 import reward_pb2_grpc

FLAGS = ["--port", "0", "--metrics-port", "off", "--precision", "fp32", "--provider", "cpu"]


def _own(path: Path) -> Path:
    """Replace a symlink by a copy of its target, so changing the file leaves the original alone."""
    if path.is_symlink():
        target = path.resolve()
        path.unlink()
        shutil.copyfile(target, path)
    return path


def _edit_json(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(_own(path).read_text())
    change(data)
    path.write_text(json.dumps(data))


def _change_weight(b: Path) -> None:
    import onnx  # the export extra: only this breakage needs it
    from onnx import numpy_helper

    path = _own(b / "model_fp32.onnx")
    model = onnx.load(path)
    weight = next(w for w in model.graph.initializer if w.data_type == onnx.TensorProto.FLOAT and w.dims)
    array = numpy_helper.to_array(weight).copy()
    array.flat[0] += 1.0  # loads and runs fine, scores differently
    weight.CopyFrom(numpy_helper.from_array(array, weight.name))
    onnx.save(model, path)


def _other_tokenizer(b: Path) -> None:
    """A different, smaller tokenizer (its ids fit the embedding): only the hash can tell."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["a small different tokenizer for a different model"] * 4,
                            trainers.BpeTrainer(vocab_size=60, special_tokens=["[UNK]"]))
    original = (b / "tokenizer.json").resolve()
    _record_tokenizer_hash(b, original)
    (b / "tokenizer.json").unlink()
    tok.save(str(b / "tokenizer.json"))


def _record_tokenizer_hash(b: Path, original: Path) -> None:
    """Bundles exported before the hash existed lack it: record the original's, as export now does."""
    from rewardserve.files import file_sha256

    digest = file_sha256(original)
    _edit_json(b / "manifest.json", lambda m: m.update(tokenizer_sha256=m.get("tokenizer_sha256") or digest))


def _grow_tokenizer(b: Path) -> None:
    """Tokens added past the embedding (as adding special tokens without resizing does); no hash."""
    from tokenizers import Tokenizer

    path = _own(b / "tokenizer.json")
    tok = Tokenizer.from_file(str(path))
    tok.add_tokens([f"<extra_{i}>" for i in range(3)])
    tok.save(str(path))
    _edit_json(b / "manifest.json", lambda m: m.pop("tokenizer_sha256", None))  # an older bundle


def _fail_parity(b: Path) -> None:
    """The fp32 file failed parity: its variant record and every combination run on it say so."""
    failure = "max_abs_logit_diff 0.31 > 0.0001"

    def fail(m: dict) -> None:
        m["variants"]["fp32"].update(passed=False, failure=failure)
        for c in m.get("combinations", []):  # OpenVINO reads the same file
            if c.get("precision") == "fp32" or c.get("variant") == "fp32":
                c.update(passed=False, failure=failure)

    _edit_json(b / "manifest.json", fail)


def _unlink(name: str) -> Callable[[Path], None]:
    return lambda b: (b / name).unlink()


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    def write(b: Path) -> None:
        (b / name).unlink()  # the symlink, never its target
        (b / name).write_bytes(data)
    return write


# kind -> (how to break a bundle, what the error must say after the file's path)
BREAKAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing ONNX file": (_unlink("model_fp32.onnx"), "model_fp32.onnx: not found"),
    "missing reward.json": (_unlink("reward.json"), "reward.json: not found"),
    "corrupt ONNX": (_write("model_fp32.onnx", b"\x08\x07garbage" * 64), "model_fp32.onnx: cannot load ONNX model"),
    "ONNX changed after export": (_change_weight, "model_fp32.onnx: sha256"),
    "invalid reward.json": (lambda b: _edit_json(b / "reward.json", lambda d: d.update(kind="regression")),
                            "reward.json: field 'kind': must be one of"),
    "variant failed parity": (_fail_parity, "manifest.json: no combination to serve for backend auto, precision fp32 "
                              "on cpu: onnxruntime:fp32:cpu: failed parity (max_abs_logit_diff 0.31"),
    "different tokenizer": (_other_tokenizer, "tokenizer.json: sha256"),
    "tokenizer larger than the embedding": (_grow_tokenizer, "tokenizer.json: does not match the model"),
}


def broken_bundles(good: Path, root: Path) -> dict[str, Path]:
    """One broken copy of ``good`` per kind, under ``root``."""
    out = {}
    for i, (kind, (breakage, _)) in enumerate(BREAKAGES.items()):
        b = root / f"bad{i}"
        if b.exists():
            shutil.rmtree(b)
        b.mkdir(parents=True)
        for f in good.iterdir():
            (b / f.name).symlink_to(f.resolve())
        breakage(b)
        out[kind] = b
    return out


def _serve(args: list[str], subprocess_: bool) -> tuple[int, str]:
    """Run ``rewardserve serve`` until it exits; return (exit code, stderr)."""
    if subprocess_:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        p = subprocess.run([sys.executable, "-m", "rewardserve.cli", "serve", *args], capture_output=True,
                           text=True, timeout=120, cwd=REPO, env=env)
        return p.returncode, p.stderr
    from rewardserve.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["serve", *args])
    return code, err.getvalue()


def bad_models(models: dict[str, Path], root: Path, log_dir: Path, subprocess_: bool) -> Section:
    """Every breakage under fail and skip, through the CLI."""
    section = Section("bad models")
    good = models["classifier"]
    broken = broken_bundles(good, root)
    names = {kind: f"bad{i}" for i, kind in enumerate(broken)}
    outcomes: dict[str, dict] = {}
    for kind, b in broken.items():
        code, err = _serve([*FLAGS, "--model", f"good={good}", "--model", f"{names[kind]}={b}",
                            "--on-model-error", "fail"], subprocess_)
        line = next((x for x in err.splitlines() if "rewardserve serve: error:" in x), "")
        message = line.split("error: ", 1)[-1].replace(str(b), "<bundle>")
        outcomes[kind] = {"fail: exit": code, "fail: message": message[:150]}
        section.check(f"fail, {kind}: exit 2 naming file and problem",
                      code == 2 and f"<bundle>/{BREAKAGES[kind][1]}" in message, f"exit {code}: {message[:160]}")
    _skip_serving(section, good, broken, names, outcomes, log_dir)
    args = [*FLAGS, "--on-model-error", "skip"] + [a for k, b in broken.items() for a in ("--model", f"{names[k]}={b}")]
    code, err = _serve(args, subprocess_)
    section.check("skip, every model broken: exit 2 listing each problem",
                  code == 2 and "no model could be loaded" in err and all(m in err for _, m in BREAKAGES.values()),
                  f"exit {code}")
    section.figures.update(kinds=outcomes, skip_all_broken_exit=code)
    return section


def _skip_serving(section: Section, good: Path, broken: dict[str, Path], names: dict[str, str],
                  outcomes: dict[str, dict], log_dir: Path) -> None:
    """Healthy + every broken model in one server with skip: it serves the healthy one only."""
    flags = {"on_model_error": "skip", "precision": "fp32", "provider": "cpu"}
    server = cli_server("bad-models-skip", {"good": good, **{names[k]: b for k, b in broken.items()}}, log_dir,
                        metrics=False, **flags)
    with server.start():
        with grpc.insecure_channel(server.target) as channel:
            stub = reward_pb2_grpc.RewardServiceStub(channel)
            listed = [m.name for m in stub.ListModels(pb.ListModelsRequest(), timeout=10).models]
            ok = stub.Score(pb.ScoreRequest(items=[pb.Item(text="still serving")],
                                            options=pb.ScoreOptions(model="good")), timeout=30)
            for kind in broken:
                try:
                    stub.GetModel(pb.GetModelRequest(model=names[kind]), timeout=10)
                    outcomes[kind]["skip: GetModel"] = "OK"
                except grpc.RpcError as e:
                    outcomes[kind]["skip: GetModel"] = e.code().name
        server.stop()
    log = server.log_path.read_text(errors="replace")
    section.check("skip: serves the healthy model only", listed == ["good"] and len(ok.scores) == 1, listed)
    for kind in broken:
        logged = f"model {names[kind]} failed to load, skipped" in log and BREAKAGES[kind][1] in log
        outcomes[kind]["skip: logged"] = logged
        section.check(f"skip, {kind}: logged, NOT_FOUND", logged and outcomes[kind]["skip: GetModel"] == "NOT_FOUND",
                      outcomes[kind]["skip: GetModel"])
    section.check("skip: SIGTERM exit 0", server.proc.returncode == 0, server.proc.returncode)
