"""``ExportConfig``: everything one ``rewardserve export`` run needs, validated once.

Example::

    config = ExportConfig(bundle="models/hh-pairwise", out="models/hh-pairwise-onnx",
                          precisions=(Precision.fp32, Precision.int8),
                          texts_file="data/hh-rlhf-harmless/dev.jsonl")
    manifest = export_bundle(config)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from rewardserve.export.texts import NoTextsError

from rewardserve.enums import Precision, enum_values

MIN_OPSET = 17  # LayerNormalization is one op from opset 17 on


class Int8Method(str, Enum):
    """How the int8 variant is quantized."""

    per_token = "per_token"  # int8 weights per channel, activations per token (export/per_token.py)
    blockwise = "blockwise"  # MatMulNBits: 8-bit weights per block, int8 compute (accuracy level 4)
    dynamic = "dynamic"  # quantize_dynamic: per-channel weights, per-tensor dynamic activations

    def __str__(self) -> str:
        return self.value


class OpenVinoInt8Method(str, Enum):
    """How the OpenVINO int8 IR is made (export/openvino_int8.py)."""

    weights = "weights"  # nncf.compress_weights: int8 weights; the CPU plugin quantizes activations as it runs
    static = "static"  # nncf.quantize: int8 weights and activations, calibrated on the calibration texts

    def __str__(self) -> str:
        return self.value


def _help(text: str, default=None, default_factory=None):
    """A dataclass field carrying its help text, shared with the CLI."""
    if default_factory is not None:
        return field(default_factory=default_factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


def _key(precision) -> str:
    """The field prefix of a precision: a Precision, a ServedPrecision (bf16) or its name."""
    return str(getattr(precision, "value", precision))


@dataclass(frozen=True)
class Tolerances:
    """Parity gates per variant, against PyTorch fp32 on the same inputs.

    ``*_max_logit_diff`` bounds the max absolute logit difference; ``*_min_agreement`` bounds
    the fraction of pairs ordered alike (pairwise models) or of equal argmax (classifiers).
    Agreement alone passes a variant whose outputs are uniformly shifted or scaled, yet
    normalized rewards, composites, ``Compare`` probabilities and ``filter`` thresholds use
    absolute values, so the size of the error is gated too:

    * ``*_max_mean_reward_diff`` bounds the mean |Δreward| (the reward label's logit) over all
      parity rows: it catches a shift, which leaves every ordering and probability alike;
    * ``*_max_prob_diff`` bounds the largest |Δprobability|: for classifiers the softmax over
      the labels (what ``filter`` thresholds); for pairwise models the Bradley-Terry probability
      σ(r_a − r_b) that text a is preferred over text b, over the parity pairs (what the model is
      trained to predict and ``Compare`` returns). The per-text σ(reward) of a pairwise model
      is still reported (``max_abs_prob_diff``) but not gated: its scale means nothing.

    The int8 defaults are about twice the figures measured on the trained models (HH pairwise
    per_token: mean |Δreward| 0.013, Bradley-Terry |Δp| at most 0.035 = 0.25 x 2 x max
    |Δreward| 0.070; toxicity: mean |Δreward| 0.007, softmax |Δp| 0.032), so re-export noise
    does not fail them; tiny test models measure 5-10x less. The bounds are absolute: a model
    whose rewards span a wider range needs wider ones.
    ``None`` disables that gate. NaN or Inf in any output always fails the variant.
    """

    fp32_max_logit_diff: float | None = _help("fp32: max |logit diff| allowed", 1e-4)
    fp32_min_agreement: float | None = _help("fp32: min ordering/argmax agreement", None)
    fp16_max_logit_diff: float | None = _help("fp16: max |logit diff| allowed", 2e-2)
    fp16_min_agreement: float | None = _help("fp16: min ordering/argmax agreement", 0.995)
    int8_max_logit_diff: float | None = _help("int8: max |logit diff| allowed", None)
    int8_min_agreement: float | None = _help("int8: min ordering/argmax agreement", 0.98)
    fp32_max_mean_reward_diff: float | None = _help("fp32: max mean |reward diff| allowed", None)
    fp16_max_mean_reward_diff: float | None = _help("fp16: max mean |reward diff| allowed", None)
    int8_max_mean_reward_diff: float | None = _help(
        "int8: max mean |reward diff| allowed (catches a uniform shift; HH measured 0.013)", 0.03)
    fp32_max_prob_diff: float | None = _help("fp32: max |probability diff| allowed", None)
    fp16_max_prob_diff: float | None = _help("fp16: max |probability diff| allowed", None)
    int8_max_prob_diff: float | None = _help(
        "int8: max |probability diff| allowed: softmax for classifiers, Bradley-Terry sigmoid(r_a - r_b) over "
        "the parity pairs for pairwise models (toxicity measured 0.032)", 0.07)
    # OpenVINO's bf16 inference on the fp32 variant, gated like fp16. bf16 keeps 8 mantissa bits
    # (fp16: 11), so its logit bound is wider; the trained defaults measured 0.002 (HH) and 0.009
    # (toxicity) against ONNX Runtime fp32.
    bf16_max_logit_diff: float | None = _help("bf16 (OpenVINO): max |logit diff| allowed", 5e-2)
    bf16_min_agreement: float | None = _help("bf16 (OpenVINO): min ordering/argmax agreement", 0.98)
    bf16_max_mean_reward_diff: float | None = _help("bf16 (OpenVINO): max mean |reward diff| allowed", None)
    bf16_max_prob_diff: float | None = _help("bf16 (OpenVINO): max |probability diff| allowed", None)

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value is None:
                continue
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0 or None, got {value!r}")
            if name.endswith("agreement") and value > 1:
                raise ValueError(f"{name} must be a fraction in [0, 1], got {value!r}")

    def max_logit_diff(self, precision: Precision) -> float | None:
        """Return the logit-difference gate of one precision."""
        return getattr(self, f"{_key(precision)}_max_logit_diff")

    def min_agreement(self, precision: Precision) -> float | None:
        """Return the agreement gate of one precision."""
        return getattr(self, f"{_key(precision)}_min_agreement")

    def max_mean_reward_diff(self, precision: Precision) -> float | None:
        """Return the mean |Δreward| gate of one precision."""
        return getattr(self, f"{_key(precision)}_max_mean_reward_diff")

    def max_prob_diff(self, precision: Precision) -> float | None:
        """Return the |Δprobability| gate of one precision."""
        return getattr(self, f"{_key(precision)}_max_prob_diff")

    def of(self, precision: Precision, prob_metric: str) -> dict[str, float | None]:
        """Return one precision's gates keyed by the parity metric each bounds (for the manifest)."""
        return {"max_abs_logit_diff": self.max_logit_diff(precision), "agreement": self.min_agreement(precision),
                "mean_abs_reward_diff": self.max_mean_reward_diff(precision),
                prob_metric: self.max_prob_diff(precision)}


@dataclass(frozen=True)
class ExportConfig:
    """Options of one export: where from, where to, which variants, how parity is measured."""

    bundle: Path = _help("model bundle directory written by `rewardserve train`")
    out: Path = _help("output directory for the ONNX bundle")
    precisions: tuple[Precision, ...] = _help(
        "variants to write", default_factory=lambda: (Precision.fp32, Precision.fp16, Precision.int8)
    )
    opset: int = _help(f"ONNX opset (>= {MIN_OPSET}, so LayerNorm stays one op)", MIN_OPSET)
    optimize: bool = _help("apply ONNX Runtime's transformers fusions to the fp32 graph", True)
    texts_file: Path | None = _help(
        "parity texts: a data file in any format `rewardserve train` reads (preference pairs, HH dialogues, "
        "conversations, rankings: JSONL; classification: CSV/JSONL with a text or tweet column), "
        "or .txt (one per line)",
        None,
    )
    builtin_texts: bool = _help(
        "parity on the 16 built-in sample texts instead of a texts file (a smoke test: too few and too easy "
        "to trust a variant on)", False)
    max_texts: int = _help("at most this many parity texts (pairs count twice)", 64)
    parity_batch_size: int = _help("batch size of the batched parity runs (batch 1 always runs too)", 8)
    tolerances: Tolerances = _help("parity gates", default_factory=Tolerances)
    int8_method: Int8Method = _help(
        "int8: per_token (default: per-channel weights, per-token activations), blockwise (MatMulNBits) "
        "or dynamic (quantize_dynamic, per-tensor activations)", Int8Method.per_token)
    int8_keep_fp32: int = _help("int8 per_token: the N dense matmuls with the largest quantization error on the "
                                "calibration texts stay fp32", 4)
    calibration_texts_file: Path | None = _help(
        "int8 per_token: texts that rank the matmuls' quantization error (same formats as texts_file; "
        "default: the parity texts). Pass training data to keep the parity texts unseen.", None)
    openvino_int8: bool = _help("an OpenVINO int8 IR by NNCF (when openvino and nncf are installed), and one of the "
                                "packed graph where there is one, served only if it passes the int8 gates", True)
    openvino_int8_method: OpenVinoInt8Method = _help(
        "OpenVINO int8: weights (int8 weights per output channel; the CPU plugin quantizes activations as it runs) "
        "or static (NNCF post-training quantization of weights and activations on the calibration texts; "
        "padded graph only)", OpenVinoInt8Method.weights)
    openvino_packed: bool = _help("for BERT classifiers, a packed OpenVINO graph (several texts per row, no padding "
                                  "between them; model_fp32_packed.onnx), served only if it passes its gates", True)
    int8_block_size: int = _help("int8 blockwise: weights per scale along K (power of two >= 16)", 32)
    int8_per_channel: bool = _help("int8 dynamic: per-channel weight scales", True)
    int8_reduce_range: bool = _help("int8 dynamic: 7-bit weights, avoids VNNI-less saturation on old CPUs", False)
    throughput: bool = _help("measure sequences/s and tokens/s of each variant on this machine", True)
    bench_batch_size: int = _help("throughput batch size", 8)
    bench_seq_len: int = _help("throughput sequence length (capped at the model's max_length)", 128)
    bench_min_time_s: float = _help("throughput: time each variant at least this long", 1.0)
    overwrite: bool = _help("replace an existing ONNX bundle in `out`", False)
    seed: int = _help("seed for the throughput inputs", 0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bundle", Path(self.bundle))
        object.__setattr__(self, "out", Path(self.out))
        for name in ("texts_file", "calibration_texts_file"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        try:
            precisions = tuple(dict.fromkeys(Precision(p) for p in self.precisions))
        except ValueError as e:
            raise ValueError(f"precisions must be among {enum_values(Precision)}: {e}") from e
        object.__setattr__(self, "precisions", precisions)
        for name, kind in (("int8_method", Int8Method), ("openvino_int8_method", OpenVinoInt8Method)):
            try:
                object.__setattr__(self, name, kind(getattr(self, name)))
            except ValueError as e:
                raise ValueError(f"{name} must be one of {enum_values(kind)}, got {getattr(self, name)!r}") from e
        self.validate()

    def validate(self) -> None:
        """Raise ValueError stating the first rule that is broken."""
        if not self.precisions:
            raise ValueError("precisions must name at least one variant")
        if self.bundle.resolve() == self.out.resolve():
            raise ValueError("out must differ from bundle")
        if self.int8_keep_fp32 < 0:
            raise ValueError(f"int8_keep_fp32 must be >= 0, got {self.int8_keep_fp32}")
        b = self.int8_block_size
        if b < 16 or b & (b - 1):
            raise ValueError(f"int8_block_size must be a power of two >= 16, got {b}")
        if self.opset < MIN_OPSET:
            raise ValueError(f"opset must be >= {MIN_OPSET} (LayerNorm as one op), got {self.opset}")
        if self.max_texts < 2:
            raise ValueError(f"max_texts must be >= 2, got {self.max_texts}")
        if self.parity_batch_size < 2:
            raise ValueError(f"parity_batch_size must be >= 2 (batch 1 always runs), got {self.parity_batch_size}")
        if self.bench_batch_size < 1 or self.bench_seq_len < 2:
            raise ValueError("bench_batch_size must be >= 1 and bench_seq_len >= 2")
        if self.bench_min_time_s < 0:
            raise ValueError(f"bench_min_time_s must be >= 0, got {self.bench_min_time_s}")
        if self.texts_file is not None and not self.texts_file.is_file():
            raise ValueError(f"texts_file {self.texts_file} does not exist")
        if self.texts_file is not None and self.builtin_texts:
            raise ValueError("texts_file and builtin_texts exclude each other: pass one")
        if self.texts_file is None and not self.builtin_texts:
            raise NoTextsError("no parity texts: pass texts_file (a data file in any format `rewardserve train` "
                               "reads, e.g. the dev split) or builtin_texts=True (the 16 built-in samples: a smoke "
                               "test only)")
