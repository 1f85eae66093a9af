"""``BenchConfig``: every setting of one ``rewardserve bench`` run, validated once.

Example::

    config = BenchConfig(bundle="runs/hh-pairwise-onnx", source_bundle="runs/hh-pairwise",
                         concurrency=(1, 4, 16, 64), duration_s=8, out="results/cpu")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rewardserve.enums import Precision, enum_values

QUICK_CONCURRENCY = (1, 8)
QUICK_DURATION_S = 1.5


def _help(text: str, default=None):
    """A dataclass field carrying its help text, shared with the CLI."""
    return field(default=default, metadata={"help": text})


def _ints(value) -> tuple[int, ...]:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    return tuple(int(v) for v in value)


def _floats(value) -> tuple[float, ...]:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    return tuple(float(v) for v in value)


@dataclass(frozen=True)
class BenchConfig:
    """Settings of one benchmark run: what is served, what load, which baselines, where results go."""

    bundle: Path = _help("ONNX bundle directory (written by `rewardserve export`)")
    source_bundle: Path | None = _help("model bundle (HF weights) the ONNX bundle came from; "
                                       "needed by the per-request PyTorch baseline (skipped without it)")
    data: Path | None = _help("texts: .jsonl (chosen/rejected dialogues, text, tweet) or .csv (tweet/text "
                              "column); default: HH-RLHF harmless dev dialogues beside the checkout")
    out: Path = _help("results directory (JSON, Markdown, PNG plots)", Path("results/bench"))
    variants: tuple[str, ...] = _help("ONNX variants measured, each against its own limit", ("fp32", "int8"))
    concurrency: tuple[int, ...] = _help("closed-loop sweep: concurrent clients per point", (1, 4, 16, 64, 256))
    items_per_request: int = _help("items in each closed-loop request (1: single-item clients)", 1)
    duration_s: float = _help("closed- and open-loop load per point, in seconds", 8.0)
    max_requests: int = _help("at most this many requests per point (bounds the run by count too)", 200_000)
    open_loop_fractions: tuple[float, ...] = _help(
        "open-loop Poisson rates as fractions of rewardserve's peak closed-loop items/s", (0.25, 0.5, 0.75))
    distribution_concurrency: int = _help("closed-loop point whose latency distribution is plotted", 64)
    threads: int = _help("intra-op threads of every system (ONNX Runtime and torch); 0: auto: rewardserve's own "
                         "default (one 1-thread worker per core on CPU), torch with one thread per core", 0)
    max_texts: int = _help("at most this many texts from the data file", 400)
    limit_batch_sizes: tuple[int, ...] = _help("batch sizes the offline limit tries (best one wins)",
                                               (1, 8, 16, 32, 64))
    max_batch_items: int = _help("rewardserve --max-batch-items of the batching server", 64)
    max_wait_ms: float = _help("rewardserve --max-wait-ms of the batching server", 5.0)
    max_batch_tokens: int | None = _help("rewardserve --max-batch-tokens of the batching server "
                                         "(default: the server's own default)")
    torch_baseline: bool = _help("measure the per-request PyTorch server (needs source_bundle)", True)
    nobatch_baseline: bool = _help("measure rewardserve with max batch 1", True)
    allow_failed_parity: bool = _help("serve variants whose export parity check failed (e.g. an untrained head, "
                                      "whose near-equal rewards fail the ordering gate; speed is unaffected)", False)
    device: str = _help("cpu, or cuda for the fp16 I/O-binding and PyTorch GPU runs", "cpu")
    request_timeout_s: float = _help("deadline of each benchmark request", 30.0)
    startup_timeout_s: float = _help("longest wait for a server to report SERVING", 180.0)
    seed: int = _help("seed of the open-loop arrival times and text order", 0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bundle", Path(self.bundle))
        object.__setattr__(self, "out", Path(self.out))
        for name in ("source_bundle", "data"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        if isinstance(self.variants, str):
            object.__setattr__(self, "variants", tuple(v.strip() for v in self.variants.split(",") if v.strip()))
        for name in ("concurrency", "limit_batch_sizes"):
            object.__setattr__(self, name, _ints(getattr(self, name)))
        object.__setattr__(self, "open_loop_fractions", _floats(self.open_loop_fractions))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError stating the first rule that is broken."""
        if not self.variants:
            raise ValueError("variants must name at least one ONNX variant")
        for v in self.variants:
            if v not in enum_values(Precision):
                raise ValueError(f"variants must be among {enum_values(Precision)}, got {v!r}")
        if not self.concurrency or min(self.concurrency) < 1:
            raise ValueError(f"concurrency must list client counts >= 1, got {self.concurrency}")
        if not self.limit_batch_sizes or min(self.limit_batch_sizes) < 1:
            raise ValueError(f"limit_batch_sizes must list sizes >= 1, got {self.limit_batch_sizes}")
        if any(f <= 0 for f in self.open_loop_fractions):
            raise ValueError(f"open_loop_fractions must be > 0, got {self.open_loop_fractions}")
        for name in ("items_per_request", "max_requests", "max_texts", "max_batch_items"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0: auto), got {self.threads}")
        for name in ("duration_s", "request_timeout_s", "startup_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_batch_tokens is not None and self.max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be >= 1, got {self.max_batch_tokens}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda, got {self.device!r}")
        if self.items_per_request > self.max_batch_items * 16:
            raise ValueError("items_per_request must be <= 16 x max_batch_items (the server's per-request cap)")

    @property
    def torch_enabled(self) -> bool:
        """Whether the per-request PyTorch baseline runs."""
        return self.torch_baseline and self.source_bundle is not None

    def to_dict(self) -> dict:
        """JSON-ready settings, for the results file."""
        return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                for k, v in self.__dict__.items()}
