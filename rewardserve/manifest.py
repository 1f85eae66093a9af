"""The ONNX-bundle manifest (``manifest.json``): what export wrote and how it measured.

An ONNX bundle is a directory with ``model_<precision>.onnx`` files, the tokenizer files,
``reward.json`` (unchanged from the model bundle) and ``manifest.json``. The service loads a
variant only through this manifest, and refuses one whose parity check failed unless forced.

Export records the sha256 of every file whose change would silently change scores (each
variant, ``tokenizer.json``, ``reward.json``); the service checks them at load.

Since version 2 it also records the served **combinations** (variant file, backend, precision,
device; :class:`Combination`), each with its parity against PyTorch fp32 on the server's own
encoding and its speed, the **host** they were measured on (:func:`host_fingerprint`), and a
small file of reference inputs and PyTorch logits (``reference_logits``) that a server checks a
combination against at load (it has no torch). Version-1 manifests load with no combinations.

Example::

    m = Manifest.load("models/hh-pairwise-onnx")
    v = m.variant(Precision.int8)
    v.passed, v.path(m.directory)
    warning = check_spec_hash(m.directory, m)   # None, or a warning for bundles exported before the hash
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from enum import Enum
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from rewardserve.bundle import REWARD_FILE, BundleError
from rewardserve.enums import Precision
from rewardserve.files import file_sha256

MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 2  # 2: combinations, host, reference_logits
REFERENCE_LOGITS_FILE = "reference_logits.npz"
# CPU flags that change which combination is fastest (or possible): a host differing in them re-measures.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
RUNTIMES = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu"), "openvino": ("openvino",)}


class Runtime(str, Enum):
    """The inference runtime of a backend."""

    onnxruntime = "onnxruntime"
    openvino = "openvino"

    def __str__(self) -> str:
        return self.value


class ServedPrecision(str, Enum):
    """What a served model computes in: a variant's own precision (ONNX Runtime) or OpenVINO's bf16 hint."""

    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"
    bf16 = "bf16"

    def __str__(self) -> str:
        return self.value


def parse_runtime(value: Any) -> Runtime | None:
    """``auto`` (or None) -> None, else the Runtime named; the error lists the choices."""
    text = str(getattr(value, "value", value)).strip().lower() if value is not None else "auto"
    if text == "auto":
        return None
    if text not in Runtime.__members__:
        raise ValueError(f"expected auto or one of {list(Runtime.__members__)}, got {value!r}")
    return Runtime(text)


def parse_precision(value: Any) -> ServedPrecision | None:
    """``auto`` (or None) -> None, else the ServedPrecision named (a variant Precision has the same names)."""
    text = str(getattr(value, "value", value)).strip().lower() if value is not None else "auto"
    if text == "auto":
        return None
    if text not in ServedPrecision.__members__:
        raise ValueError(f"expected auto or one of {list(ServedPrecision.__members__)}, got {value!r}")
    return ServedPrecision(text)


def check_combination(runtime: Runtime | None, precision: ServedPrecision | None, provider: str) -> None:
    """Raise ValueError when a backend, precision and provider asked for cannot go together."""
    if runtime is Runtime.openvino and provider == "cuda":
        raise ValueError("backend openvino runs on the CPU: provider cuda needs backend onnxruntime (or auto)")
    if precision is ServedPrecision.bf16 and (runtime is Runtime.onnxruntime or provider == "cuda"):
        raise ValueError("precision bf16 is OpenVINO's, on the CPU: use backend openvino or auto")
    if runtime is Runtime.openvino and precision is ServedPrecision.fp16:
        raise ValueError("backend openvino serves fp32, bf16 or int8 (NNCF), not fp16")


@dataclass(frozen=True)
class Combination:
    """One way to serve the bundle: a variant file run by a runtime at a precision on a device.

    ``parity`` holds the metrics against PyTorch fp32 on the server's encoding (with the gates in
    ``parity["tolerances"]``); ``verified_on`` says where that ran (e.g. ``CPUExecutionProvider`` for
    an fp16 variant meant for CUDA: then ``note`` says it is unverified on CUDA). ``items_per_s``
    is one single-threaded backend on the reference batch, on the manifest's ``host``.
    ``reference_tolerance`` bounds max |Δlogit| against the reference logits at load.
    """

    runtime: Runtime
    precision: ServedPrecision
    variant: Precision
    device: str = "cpu"  # cpu | cuda
    passed: bool = False
    failure: str = ""
    parity: dict[str, Any] = field(default_factory=dict)
    verified_on: str = ""
    note: str = ""
    items_per_s: float = 0.0
    reference_tolerance: float | None = None
    file: str = ""  # a file of its own (OpenVINO int8 IR, the packed graph), else the variant's file
    sha256: str = ""  # of ``file`` (an IR: its .xml and .bin together, see combination_sha256)
    packed: bool = False  # runs packed rows (export/packed.py): several items per row, no padding between

    def __post_init__(self) -> None:
        object.__setattr__(self, "runtime", Runtime(self.runtime))
        object.__setattr__(self, "precision", ServedPrecision(self.precision))
        object.__setattr__(self, "variant", Precision(self.variant))

    @property
    def key(self) -> str:
        """``runtime:precision:device[:packed]``, e.g. ``openvino:bf16:cpu``."""
        return f"{self.runtime.value}:{self.precision.value}:{self.device}" + (":packed" if self.packed else "")


def combination_sha256(path: str | Path) -> str:
    """sha256 of a combination's own file; an OpenVINO IR (``.xml``) counts its ``.bin`` weights too."""
    path = Path(path)
    if path.suffix != ".xml":
        return file_sha256(path)
    import hashlib

    return hashlib.sha256((file_sha256(path) + file_sha256(path.with_suffix(".bin"))).encode()).hexdigest()


def _version_of(packages: tuple[str, ...]) -> str:
    for name in packages:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return ""


def _cpu_model_and_flags() -> tuple[str, list[str]]:
    model, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:  # not Linux: the model from the platform module, no flags
        import platform

        model = platform.processor()
    return model, sorted(f for f in SPEED_FLAGS if f in flags)


def host_fingerprint() -> dict[str, Any]:
    """What makes speed figures of this host comparable: CPU model and flags, cores, runtime versions."""
    model, flags = _cpu_model_and_flags()
    return {"cpu": model, "cpu_flags": flags, "cores": os.cpu_count() or 1,
            **{runtime: _version_of(packages) for runtime, packages in RUNTIMES.items()}}


def host_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The fingerprint fields that differ, as ``name: recorded -> current`` (empty: the same host)."""
    keys = sorted(set(recorded) | set(current))
    return [f"{k}: {recorded.get(k)!r} -> {current.get(k)!r}" for k in keys if recorded.get(k) != current.get(k)]


@dataclass(frozen=True)
class VariantInfo:
    """One exported ONNX file and its measured parity against PyTorch fp32."""

    precision: Precision
    file: str
    opset: int
    inputs: list[str]
    outputs: list[str]
    providers: list[str]
    sha256: str
    passed: bool
    fusions: dict[str, int] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    throughput: dict[str, Any] = field(default_factory=dict)
    failure: str = ""  # why parity failed, naming the metric and value
    method: str = ""  # how the variant was made, e.g. "int8 blockwise MatMulNBits, block 32"

    def path(self, directory: str | Path) -> Path:
        """Return the ONNX file's path inside the bundle directory."""
        return Path(directory) / self.file


@dataclass(frozen=True)
class Manifest:
    """The index of an ONNX bundle."""

    source_fingerprint: str
    model_type: str
    variants: dict[str, VariantInfo]
    pad_token_id: int = 0  # the service pads on the right with this id
    created_at: str = ""
    tool_versions: dict[str, str] = field(default_factory=dict)
    # The un-optimized fp32 export kept for comparison: {"file", "sha256", "throughput"}.
    reference: dict[str, Any] = field(default_factory=dict)
    # Where the parity texts came from: {"source", "n_texts", "paired", "runs"}.
    parity_data: dict[str, Any] = field(default_factory=dict)
    tokenizer_sha256: str = ""  # sha256 of tokenizer.json as exported ("" = not recorded)
    # sha256 of reward.json as exported: labels, reward label and normalization are part of the scores ("" = not recorded).
    reward_sha256: str = ""
    embedding_rows: int = 0  # input-embedding rows: larger tokenizer ids are refused at load (0: not recorded)
    combinations: list[Combination] = field(default_factory=list)  # version 2: every way to serve it
    host: dict[str, Any] = field(default_factory=dict)  # host_fingerprint() where they were measured
    # {"file", "sha256", "n_texts", "source"}: inputs (the server's encoding) and PyTorch fp32 logits.
    reference_logits: dict[str, Any] = field(default_factory=dict)
    schema_version: int = MANIFEST_VERSION
    directory: str = field(default="", compare=False)

    def variant(self, precision: Precision | str) -> VariantInfo:
        """Return the variant of that precision, or raise BundleError naming what exists."""
        key = Precision(precision).value
        if key not in self.variants:
            raise BundleError(f"{Path(self.directory) / MANIFEST_FILE}: no {key} variant (has {sorted(self.variants)})")
        return self.variants[key]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form (without the load directory)."""
        d = asdict(self)
        d.pop("directory")
        for v in d["variants"].values():
            v["precision"] = Precision(v["precision"]).value
        for c in d["combinations"]:
            c.update(runtime=c["runtime"].value, precision=c["precision"].value, variant=c["variant"].value)
        d["schema_version"] = MANIFEST_VERSION if self.combinations else 1
        return d

    def save(self, directory: str | Path) -> Path:
        """Write ``manifest.json`` atomically into ``directory``."""
        path = Path(directory) / MANIFEST_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Manifest:
        """Read ``manifest.json``; a missing or malformed file raises BundleError naming it."""
        path = Path(directory) / MANIFEST_FILE
        if not path.is_file():
            raise BundleError(f"{path}: not found (run `rewardserve export` first)")
        try:
            d = json.loads(path.read_text())
            if not isinstance(d.get("schema_version", 1), int) or d.get("schema_version", 1) > MANIFEST_VERSION:
                raise ValueError(f"schema_version is {d.get('schema_version')!r}, newer than this rewardserve "
                                 f"reads ({MANIFEST_VERSION}): upgrade rewardserve")
            variants = {
                k: VariantInfo(**{**v, "precision": Precision(v["precision"])})
                for k, v in d.pop("variants").items()
            }
            combinations = [Combination(**c) for c in d.pop("combinations", [])]
            return cls(**d, variants=variants, combinations=combinations, directory=str(directory))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise BundleError(f"{path}: invalid manifest: {e}") from e


def check_spec_hash(bundle_dir: str | Path, manifest: Manifest) -> str | None:
    """Check ``reward.json`` against the sha256 the manifest recorded at export.

    Returns None when it matches, and a warning (naming the missing ``reward_sha256``) for a
    bundle exported before the hash was recorded, for the caller to log. Raises BundleError
    naming ``reward.json`` when the file is missing or was changed after export.
    """
    path = Path(bundle_dir) / REWARD_FILE
    manifest_path = Path(bundle_dir) / MANIFEST_FILE
    if not manifest.reward_sha256:
        return (f"{manifest_path}: no reward_sha256 recorded (exported before reward.json was hashed), so edits to "
                f"{path} go unnoticed; export the bundle again to record it")
    if not path.is_file():
        raise BundleError(f"{path}: not found (the bundle's manifest records its sha256)")
    actual = file_sha256(path)
    if actual != manifest.reward_sha256:
        raise BundleError(
            f"{path}: sha256 {actual[:16]}... does not match {manifest.reward_sha256[:16]}... recorded in "
            f"{manifest_path}: reward.json (labels, reward label, normalization) was changed after export "
            "(export the bundle again)"
        )
    return None
