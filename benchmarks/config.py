"""``BenchConfig``: every setting of one ``rewardserve bench`` run, validated once.

Example::

    config = BenchConfig(bundle="runs/hh-pairwise-onnx", source_bundle="runs/hh-pairwise",
                         concurrency=(1, 4, 16, 64), duration_s=8, out="results/cpu")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rewardserve.enums import Precision, enum_values

SERVED = (*enum_values(Precision), "bf16", "auto")  # what --variants may name
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

    bundle: Path | None = _help("ONNX bundle directory (written by `rewardserve export`); not with --tiny")
    source_bundle: Path | None = _help("model bundle (HF weights) the ONNX bundle came from; "
                                       "needed by the per-request PyTorch baseline (skipped without it)")
    data: Path | None = _help("texts: .jsonl (chosen/rejected dialogues, text, tweet) or .csv (tweet/text "
                              "column); default: HH-RLHF harmless dev dialogues beside the checkout")
    out: Path = _help("results directory (JSON, Markdown, PNG plots)", Path("results/bench"))
    variants: tuple[str, ...] = _help("served precisions measured: ONNX variants (fp32, fp16, int8), bf16 (OpenVINO on "
                                      "the fp32 file: with --server-backend openvino) or auto (the server's own "
                                      "choice); each also against its ONNX file's ONNX Runtime limit", ("fp32", "int8"))
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
    max_wait_ms: float | None = _help("rewardserve --max-wait-ms of the batching server (default: the server's "
                                      "own, 0 on CPU and 5 on CUDA)")
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
    tiny: bool = _help("build (once, under .cache/bench-tiny) and serve the reliability suite's tiny 2-layer BERT "
                       "pairwise bundle, its model bundle as --source-bundle", False)
    client_procs: int = _help("load-generator processes (1: in this process); gRPC clients open >= 8 channels "
                              "per server process in all", 1)
    server_backend: str | None = _help("rewardserve --backend: auto, onnxruntime or openvino (default: the server's "
                                       "own)")
    server_engine: str | None = _help("rewardserve --engine: auto, per-process or shared (default: the server's "
                                      "own)")
    server_processes: int = _help("rewardserve --processes (0: the server's default); also sets the channels", 0)
    protocols: tuple[str, ...] = _help("grpc and/or http (OpenRLHF's /get_reward, a new connection per request)",
                                       ("grpc",))
    noop_baseline: bool = _help("measure the no-op RewardService (the load generator's ceiling)", True)
    other_backends_baseline: bool = _help("the limit also tries OpenVINO (fp32/bf16) and PyTorch (fp32/bf16 on "
                                          "CPU, fp32/fp16 on CUDA) offline, besides every ONNX Runtime variant", True)
    torch_dtypes: tuple[str, ...] = _help("per-request PyTorch baseline dtypes (auto: fp32 and bf16 where the CPU "
                                          "has it; fp32 and fp16 on CUDA)", ("auto",))
    serve_rm: str = _help("OpenRLHF serve_rm peer: auto (when its venv exists), on (required), off", "auto")
    litserve: str = _help("LitServe peer on the bundle's model_fp32.onnx (../shared/peers/litserve_rm.py, its venv "
                          "$LITSERVE_VENV or /tmp/ls-venv): auto, on, off", "auto")
    suites: tuple[str, ...] = _help("sweep (closed/open loop against limits and baselines) and/or trickle", ("sweep",))
    trickle_wait_ms: tuple[str, ...] = _help("trickle check: the servers' max_wait_ms (auto: the server's default)",
                                             ("auto", "5"))
    trickle_multiples: tuple[float, ...] = _help("trickle rates as multiples of 1 / max_wait_ms", (4.0, 2.0, 1.0))
    trickle_base_ms: float = _help("trickle period used where max_wait_ms is 0 (the CPU default)", 5.0)
    ratio_concurrency: int = _help("closed-loop point of the ratios (0: 64 if swept, else the largest)", 0)

    def __post_init__(self) -> None:
        if self.bundle is not None:
            object.__setattr__(self, "bundle", Path(self.bundle))
        object.__setattr__(self, "out", Path(self.out))
        for name in ("protocols", "torch_dtypes", "suites", "trickle_wait_ms"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = value.split(",")
            object.__setattr__(self, name, tuple(str(v).strip() for v in value if str(v).strip()))
        object.__setattr__(self, "trickle_multiples", _floats(self.trickle_multiples))
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
        if self.bundle is None and not self.tiny:
            raise ValueError("bundle is required (or tiny, to build and serve the tiny bundle)")
        self._validate_new()
        if not self.variants:
            raise ValueError("variants must name at least one ONNX variant")
        for v in self.variants:
            if v not in SERVED:
                raise ValueError(f"variants must be among {SERVED}, got {v!r}")
        if self.server_backend not in (None, "auto", "onnxruntime", "openvino"):
            raise ValueError(f"server_backend must be auto, onnxruntime or openvino, got {self.server_backend!r}")
        if self.server_engine not in (None, "auto", "per-process", "shared"):
            raise ValueError(f"server_engine must be auto, per-process or shared, got {self.server_engine!r}")
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
        if self.max_wait_ms is not None and self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda, got {self.device!r}")
        if self.items_per_request > self.max_batch_items * 16:
            raise ValueError("items_per_request must be <= 16 x max_batch_items (the server's per-request cap)")

    def _validate_new(self) -> None:
        for name, allowed in (("protocols", ("grpc", "http")), ("suites", ("sweep", "trickle"))):
            value = getattr(self, name)
            if not value or any(v not in allowed for v in value):
                raise ValueError(f"{name} must list some of {allowed}, got {value}")
        if self.client_procs < 1:
            raise ValueError(f"client_procs must be >= 1, got {self.client_procs}")
        if self.server_processes < 0:
            raise ValueError(f"server_processes must be >= 0 (0: the server's default), got {self.server_processes}")
        for name in ("serve_rm", "litserve"):
            if getattr(self, name) not in ("auto", "on", "off"):
                raise ValueError(f"{name} must be auto, on or off, got {getattr(self, name)!r}")
        for d in self.torch_dtypes:
            if d not in ("auto", "fp32", "bf16", "fp16"):
                raise ValueError(f"torch_dtypes must be among auto, fp32, bf16, fp16, got {d!r}")
        for w in self.trickle_wait_ms:
            if w != "auto" and not float(w) >= 0:
                raise ValueError(f"trickle_wait_ms must be auto or >= 0, got {w!r}")
        if not self.trickle_multiples or min(self.trickle_multiples) <= 0 or self.trickle_base_ms <= 0:
            raise ValueError("trickle_multiples and trickle_base_ms must be > 0")
        if self.ratio_concurrency and self.ratio_concurrency not in self.concurrency:
            raise ValueError(f"ratio_concurrency {self.ratio_concurrency} is not in concurrency {self.concurrency}")

    def onnx_file(self, variant: str, default: str) -> str:
        """The ONNX variant file a served precision runs from (its ONNX Runtime limit's file)."""
        return {"bf16": "fp32", "auto": default}.get(variant, variant)

    @property
    def reference_concurrency(self) -> int:
        """The closed-loop point the ratios are read at."""
        return self.ratio_concurrency or (64 if 64 in self.concurrency else max(self.concurrency))

    @property
    def torch_enabled(self) -> bool:
        """Whether the per-request PyTorch baseline runs."""
        return self.torch_baseline and self.source_bundle is not None

    def to_dict(self) -> dict:
        """JSON-ready settings, for the results file."""
        return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                for k, v in self.__dict__.items()}
