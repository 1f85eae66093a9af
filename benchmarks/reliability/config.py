"""``ReliabilityConfig``: the settings of one reliability run, and the quick preset.

Example::

    config = ReliabilityConfig(out=Path("benchmarks/results/reliability"), soak_duration_s=180)
    quick = ReliabilityConfig.quick(out=tmp_path)   # the fast subset the test suite runs
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


def _opt(default: Any, help: str):
    """A field with its help text (shared with the command line)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class ReliabilityConfig:
    """Settings of the reliability suite; the bounds each check holds the figures to are here too."""

    out: Path = _opt(Path("benchmarks/results/reliability"), "results directory (results.json, results.md, logs)")
    pairwise: Path | None = _opt(None, "pairwise ONNX bundle (default: a tiny one built in the results dir)")
    classifier: Path | None = _opt(None, "classifier ONNX bundle (default: a tiny one built in the results dir)")
    work_dir: Path | None = _opt(None, "scratch directory: tiny bundles, broken copies (default: a temp dir)")
    seed: int = _opt(0, "random seed of items and load")
    logit_tolerance: float = _opt(1e-4, "fp32: a served logit may differ from the solo one by this (abs and rel)")
    # soak
    soak_duration_s: float = _opt(180.0, "soak: seconds of load")
    soak_warmup_s: float = _opt(20.0, "soak: seconds of load before the start memory figure")
    soak_clients: int = _opt(128, "soak: concurrent clients (a quarter of them stream)")
    soak_pool: int = _opt(192, "soak: distinct items per model, each scored solo up front")
    soak_max_words: int = _opt(400, "soak: longest generated text, in words (past max_length: truncation)")
    soak_timeout_s: float = _opt(300.0, "soak: per-request deadline (long: a soak request must not time out)")
    memory_growth_mib: float = _opt(64.0, "soak: server RSS may grow at most this much after warm-up")
    # overload
    overload_phase_s: float = _opt(5.0, "overload: seconds of each phase (normal, overload, normal again)")
    overload_clients: int = _opt(64, "overload: clients hammering a 64-item queue")
    gate_timings: bool = _opt(True, "timing checks (rejection latency, recovery, exit time) must pass; the quick "
                                    "subset only reports them (tests make no timed assertions)")
    rejection_p50_ms: float = _opt(50.0, "overload: RESOURCE_EXHAUSTED must come back within this (median)")
    recovery_ratio: float = _opt(0.8, "overload: throughput after the overload / before, at least")
    # SIGTERM
    sigterm_clients: int = _opt(32, "SIGTERM: clients sending while the signal arrives")
    sigterm_load_s: float = _opt(3.0, "SIGTERM: seconds of load before the signal")
    grace_period_s: float = _opt(5.0, "SIGTERM: the server's grace period")
    # bad input
    bad_input_requests: int = _opt(10_000, "bad input: generated requests (hypothesis; at least this many)")
    bad_input_batch: int = _opt(20, "bad input: requests per hypothesis example, sent concurrently")
    bad_input_workers: int = _opt(2, "bad input: generating processes (seeds 0, 1, ...), so the server never idles")
    # bad models
    bad_models_subprocess: bool = _opt(True, "bad models: run fail-mode CLI checks as subprocesses "
                                             "(quick: in-process rewardserve.cli.main)")

    def __post_init__(self) -> None:
        for f in fields(self):  # the CLI hands over strings
            value = getattr(self, f.name)
            if f.name in ("out", "work_dir", "pairwise", "classifier"):
                object.__setattr__(self, f.name, None if value is None else Path(value))
            elif isinstance(f.default, bool):
                object.__setattr__(self, f.name, value if isinstance(value, bool) else str(value).lower() == "true")
            elif isinstance(f.default, (int, float)):
                object.__setattr__(self, f.name, type(f.default)(value))
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0 and f.name != "seed":
                raise ValueError(f"{f.name} must be > 0, got {value}")
        if self.soak_warmup_s >= self.soak_duration_s:
            raise ValueError(f"soak_warmup_s ({self.soak_warmup_s}) must be < soak_duration_s ({self.soak_duration_s})")

    @classmethod
    def quick(cls, **overrides) -> ReliabilityConfig:
        """The fast subset (~40 s on 2 cores): short phases, the same checks; a looser recovery bound
        (1.5 s phases on a shared machine are noisy)."""
        values: dict[str, Any] = dict(soak_duration_s=8.0, soak_warmup_s=2.0, soak_pool=48, soak_max_words=120,
                                      overload_phase_s=1.2, recovery_ratio=0.5, sigterm_load_s=1.5, grace_period_s=3.0,
                                      bad_models_subprocess=False, gate_timings=False)
        values.update(overrides)
        return cls(**values)

    def with_updates(self, **changes: Any) -> ReliabilityConfig:
        """A copy with some fields replaced."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {f.name: str(v) if isinstance(v := getattr(self, f.name), Path) else v for f in fields(self)}
