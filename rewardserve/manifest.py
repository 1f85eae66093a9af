"""The ONNX-bundle manifest (``manifest.json``): what export wrote and how it measured.

An ONNX bundle is a directory with ``model_<precision>.onnx`` files, the tokenizer files,
``reward.json`` (unchanged from the model bundle) and ``manifest.json``. The service loads a
variant only through this manifest, and refuses one whose parity check failed unless forced.

Export records the sha256 of every file whose change would silently change scores (each
variant, ``tokenizer.json``, ``reward.json``); the service checks them at load.

Example::

    m = Manifest.load("models/hh-pairwise-onnx")
    v = m.variant(Precision.int8)
    v.passed, v.path(m.directory)
    warning = check_spec_hash(m.directory, m)   # None, or a warning for bundles exported before the hash
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rewardserve.bundle import REWARD_FILE, BundleError
from rewardserve.enums import Precision
from rewardserve.files import file_sha256

MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 1


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
    # sha256 of tokenizer.json as exported: the service refuses a replaced tokenizer ("" = not recorded).
    tokenizer_sha256: str = ""
    # sha256 of reward.json as exported: labels, reward label and normalization are part of the scores ("" = not recorded).
    reward_sha256: str = ""
    schema_version: int = MANIFEST_VERSION
    directory: str = field(default="", compare=False)

    def variant(self, precision: Precision | str) -> VariantInfo:
        """Return the variant of that precision, or raise BundleError naming what exists."""
        key = Precision(precision).value
        if key not in self.variants:
            raise BundleError(
                f"{Path(self.directory) / MANIFEST_FILE}: no {key} variant (has {sorted(self.variants)})"
            )
        return self.variants[key]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form (without the load directory)."""
        d = asdict(self)
        d.pop("directory")
        for v in d["variants"].values():
            v["precision"] = Precision(v["precision"]).value
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
            variants = {
                k: VariantInfo(**{**v, "precision": Precision(v["precision"])})
                for k, v in d.pop("variants").items()
            }
            return cls(**d, variants=variants, directory=str(directory))
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
