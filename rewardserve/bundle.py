"""The model-bundle contract: ``reward.json``, shared by training, export and the service.

A *model bundle* is a directory with Hugging Face weights, the tokenizer and ``reward.json``.
An *ONNX bundle* (see :mod:`rewardserve.manifest`) carries the same ``reward.json`` unchanged.
``reward.json`` says what the model is and how to turn its logits into a reward:

=================== ==========================================================================
field               meaning
=================== ==========================================================================
schema_version      integer: 1, or 2 when the file holds ``agreement`` (see below)
kind                ``pairwise`` (one logit, Bradley-Terry) or ``classifier`` (N logits)
id2label            ``{"0": "toxic", "1": "non_toxic"}``; a pairwise model has ``{"0": "reward"}``
reward_label        the label whose logit is the reward (``non_toxic``; ``reward`` for pairwise)
normalization       ``{"mean": m, "std": s}`` of the reward over the training data, or null
max_length          tokens the model reads, special tokens included
truncation_side     ``left`` keeps the end of long texts (where the compared response is)
text_format         ``plain``, ``prompt_response`` or ``chat_template``
prompt_template     how a (prompt, response) pair becomes one text: ``{prompt}{response}``
chat_template       Jinja template for chat messages (the tokenizer's, or Anthropic HH style)
base_model          the model it was trained from; ``model_type`` its HF architecture family
metrics             evaluation metrics at the end of training
data_fingerprint    sha256 of the training data and the recipe
agreement           optional (version 2): how much the training data's labellers agreed, see
                    :class:`AgreementSummary`; absent when the data had one label per item
=================== ==========================================================================

Compatibility: a reader accepts every ``schema_version`` up to its own (:data:`SCHEMA_VERSION`)
and refuses newer ones, naming both. Version 2 only adds the optional ``agreement``; a bundle is
written with the lowest version that holds its fields (2 with an agreement summary, else 1), so
bundles without one stay readable by servers that read only version 1, and every version-1
bundle loads unchanged (no ``agreement``). A version-1 file that holds ``agreement`` is refused.

Example::

    spec = RewardSpec.load("models/hh-pairwise")
    spec.reward_index          # 0
    spec.normalize(1.7)        # (1.7 - mean) / std
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rewardserve.agreement_summary import AgreementSummary, BundleError, bad_field
from rewardserve.enums import ModelKind, TextFormat, Truncation, enum_values

SCHEMA_VERSION = 2  # the newest reward.json this code reads and writes
AGREEMENT_VERSION = 2  # the first schema version with the optional agreement summary

__all__ = ["AgreementSummary", "BundleError", "Normalization", "RewardSpec", "HH_CHAT_TEMPLATE", "SCHEMA_VERSION"]
REWARD_FILE = "reward.json"

# Anthropic HH dialogue style; used when the tokenizer has no chat template of its own
# (encoders such as BERT), so chat messages read like the HH training data.
HH_CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}{{ '\\n\\nHuman: ' + m['content'] }}"
    "{% elif m['role'] == 'assistant' %}{{ '\\n\\nAssistant: ' + m['content'] }}"
    "{% else %}{{ '\\n\\nSystem: ' + m['content'] }}{% endif %}"
    "{% endfor %}"
)


@dataclass(frozen=True)
class Normalization:
    """Mean and standard deviation of the raw reward over the training data."""

    mean: float
    std: float


@dataclass(frozen=True)
class RewardSpec:
    """What a reward model is and how its logits become a reward (``reward.json``).

    Example::

        spec = RewardSpec(kind=ModelKind.classifier, id2label={0: "toxic", 1: "non_toxic"},
                          reward_label="non_toxic", max_length=128)
        spec.reward_index  # 1
    """

    kind: ModelKind
    id2label: dict[int, str]
    reward_label: str
    max_length: int
    truncation_side: Truncation = Truncation.left
    text_format: TextFormat = TextFormat.plain
    prompt_template: str = "{prompt}{response}"
    chat_template: str = HH_CHAT_TEMPLATE
    normalization: Normalization | None = None
    base_model: str = ""
    model_type: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    data_fingerprint: str = ""
    agreement: AgreementSummary | None = None
    # The version of the file it was read from (compare=False: it does not change what the model is).
    schema_version: int = field(default=SCHEMA_VERSION, compare=False)

    def __post_init__(self) -> None:
        self.validate()

    # ----------------------------------------------------------------- derived
    @property
    def num_labels(self) -> int:
        """Number of logits the model returns."""
        return len(self.id2label)

    @property
    def labels(self) -> list[str]:
        """Label names in logit order."""
        return [self.id2label[i] for i in range(self.num_labels)]

    @property
    def reward_index(self) -> int:
        """Index of the logit that is the reward."""
        return self.labels.index(self.reward_label)

    def normalize(self, reward: float) -> float:
        """Return the reward standardised with the stored statistics (raw if there are none)."""
        if self.normalization is None:
            return reward
        return (reward - self.normalization.mean) / self.normalization.std

    # -------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise :class:`BundleError` naming the first invalid field."""
        v = self.schema_version
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            _bad("schema_version", f"must be an integer from 1 to {SCHEMA_VERSION}, got {v!r}")
        if v > SCHEMA_VERSION:
            _bad("schema_version", f"is {v}, newer than this rewardserve reads ({SCHEMA_VERSION}): upgrade rewardserve")
        if self.agreement is not None:
            if not isinstance(self.agreement, AgreementSummary):
                _bad("agreement", f"must be an AgreementSummary, got {type(self.agreement).__name__}")
            if v < AGREEMENT_VERSION:
                _bad("agreement", f"needs schema_version >= {AGREEMENT_VERSION}, the file says {v}")
            self.agreement.validate()
        if not isinstance(self.kind, ModelKind):
            _bad("kind", f"must be one of {enum_values(ModelKind)}, got {self.kind!r}")
        if not self.id2label:
            _bad("id2label", "must name at least one label")
        if sorted(self.id2label) != list(range(len(self.id2label))):
            _bad("id2label", f"keys must be 0..{len(self.id2label) - 1}, got {sorted(self.id2label)}")
        if len(set(self.id2label.values())) != len(self.id2label):
            _bad("id2label", "label names must be unique")
        if self.kind is ModelKind.pairwise and len(self.id2label) != 1:
            _bad("id2label", f"a pairwise model has exactly one logit, got {len(self.id2label)}")
        if self.kind is ModelKind.classifier and len(self.id2label) < 2:
            _bad("id2label", "a classifier needs at least two labels")
        if self.reward_label not in self.id2label.values():
            _bad("reward_label", f"{self.reward_label!r} is not one of the labels {self.labels}")
        if not isinstance(self.max_length, int) or self.max_length < 2:
            _bad("max_length", f"must be an integer >= 2, got {self.max_length!r}")
        if self.truncation_side not in (Truncation.left, Truncation.right):
            _bad("truncation_side", f"must be 'left' or 'right', got {self.truncation_side!r}")
        if not isinstance(self.text_format, TextFormat):
            _bad("text_format", f"must be one of {enum_values(TextFormat)}, got {self.text_format!r}")
        if "{response}" not in self.prompt_template:
            _bad("prompt_template", "must contain '{response}'")
        if not self.chat_template:
            _bad("chat_template", "must be a non-empty Jinja template")
        n = self.normalization
        if n is not None and not (math.isfinite(n.mean) and math.isfinite(n.std) and n.std > 0):
            _bad("normalization", f"needs a finite mean and a std > 0, got {n}")

    # ------------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form of ``reward.json``."""
        d = asdict(self)
        d["kind"] = self.kind.value
        d["truncation_side"] = self.truncation_side.value
        d["text_format"] = self.text_format.value
        d["id2label"] = {str(k): v for k, v in self.id2label.items()}
        # The lowest version that holds the fields: readers of version 1 keep reading bundles without agreement.
        d["schema_version"] = AGREEMENT_VERSION if self.agreement is not None else 1
        if self.agreement is None:
            del d["agreement"]
        else:
            d["agreement"]["outlier_labellers"] = list(self.agreement.outlier_labellers)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RewardSpec:
        """Build a spec from parsed JSON, naming the field that is wrong."""
        if not isinstance(d, dict):
            raise BundleError(f"{REWARD_FILE}: must hold a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            _bad(unknown[0], "unknown field")
        for req in ("kind", "id2label", "reward_label", "max_length"):
            if req not in d:
                _bad(req, "is required")
        d = dict(d)
        d["kind"] = _enum(ModelKind, "kind", d["kind"])
        if "truncation_side" in d:
            d["truncation_side"] = _enum(Truncation, "truncation_side", d["truncation_side"])
        if "text_format" in d:
            d["text_format"] = _enum(TextFormat, "text_format", d["text_format"])
        if not isinstance(d["id2label"], dict):
            _bad("id2label", "must be an object of index -> label")
        try:
            d["id2label"] = {int(k): str(v) for k, v in d["id2label"].items()}
        except ValueError:
            _bad("id2label", "keys must be integers")
        if d.get("normalization") is not None:
            n = d["normalization"]
            if not isinstance(n, dict) or set(n) != {"mean", "std"}:
                _bad("normalization", "must be {'mean': float, 'std': float} or null")
            d["normalization"] = Normalization(float(n["mean"]), float(n["std"]))
        d.setdefault("schema_version", 1)  # files from before the field was written are version 1
        if d.get("agreement") is not None:
            if isinstance(d["schema_version"], int) and d["schema_version"] < AGREEMENT_VERSION:
                _bad("agreement", f"needs schema_version >= {AGREEMENT_VERSION}, the file says {d['schema_version']}")
            d["agreement"] = AgreementSummary.from_dict(d["agreement"])
        return cls(**d)

    def save(self, directory: str | Path) -> Path:
        """Write ``reward.json`` into ``directory`` and return its path."""
        path = Path(directory) / REWARD_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        tmp.replace(path)  # atomic: a crash never leaves a half-written contract
        return path

    @classmethod
    def load(cls, directory: str | Path) -> RewardSpec:
        """Read and validate ``reward.json`` from a bundle directory."""
        path = Path(directory) / REWARD_FILE
        if not path.is_file():
            raise BundleError(f"{path}: not found (is {directory} a rewardserve bundle?)")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise BundleError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from e
        try:
            return cls.from_dict(data)
        except BundleError as e:
            raise BundleError(f"{path}: {e}") from e

    def with_updates(self, **changes: Any) -> RewardSpec:
        """Return a copy with some fields replaced (validated again)."""
        return replace(self, **changes)


_bad = bad_field


def _enum(enum_cls: type, fieldname: str, value: Any):
    try:
        return enum_cls(value)
    except ValueError:
        _bad(fieldname, f"must be one of {enum_values(enum_cls)}, got {value!r}")
