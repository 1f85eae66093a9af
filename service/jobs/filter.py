"""``rewardserve filter``: split generated outputs into kept and rejected by a classifier's probability.

Example::

    rewardserve filter gen.jsonl --model toxicity --threshold 0.5 --address 127.0.0.1:50051
    rewardserve filter gen.jsonl --threshold 0.5 --bundle runs/toxicity-onnx --label toxic

A record is KEPT when P(label) < threshold, else rejected. ``--label`` names a class of the
classifier; by default it is "anything but the model's reward label" (the toxicity model's
reward label is ``non_toxic``, so the default is P(toxic) = 1 - P(non_toxic)). Records are JSON
objects with a text field (``--text-field``), or a prompt and a response (scored as a pair, or
alone with ``--response-only``), or ``messages``. Each output line is the input record plus a
``rewardserve`` object (model, label, prob, reward, probabilities). The input is streamed in
chunks with a bounded number of requests in flight (:mod:`service.streaming`), so files larger
than memory work; results are written in input order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardserve.service.domain import item_from_obj
from rewardserve.service.errors import InvalidArgument

from rewardserve.formatting import Item, PairItem, TextItem

BINS = 1000  # probability histogram resolution: quantiles are exact to 1/BINS


def _f(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class FilterConfig:
    """One ``rewardserve filter`` run; every field is also a flag (``--text-field`` ...)."""

    input: str = _f("", "JSONL of generated outputs ('-': stdin, then --kept and --rejected are required)",
                    positional=True)
    threshold: float = _f(0.5, "keep a record when P(label) < threshold (0 < threshold <= 1)")
    model: str = _f("", "model name on the server (default: the server's default; with --bundle: a label)")
    label: str | None = _f(None, "the class whose probability is compared (default: all but the reward label)")
    address: str | None = _f(None, "score through this server (HOST:PORT, several comma-separated, dns:///)")
    bundle: Path | None = _f(None, "score in-process with this ONNX bundle instead of a server")
    kept: Path | None = _f(None, "JSONL of kept records (default: INPUT.kept.jsonl beside the input)")
    rejected: Path | None = _f(None, "JSONL of rejected records (default: INPUT.rejected.jsonl)")
    summary: Path | None = _f(None, "also write the counts and distribution here as JSON")
    text_field: str = _f("text", "field holding the text")
    prompt_field: str = _f("prompt", "field holding the prompt (records without the text field)")
    response_field: str = _f("response", "field holding the response")
    response_only: bool = _f(False, "score the response alone, not prompt + response")
    batch_size: int = _f(64, "records per request")
    max_in_flight: int = _f(4, "requests in flight (memory holds about (this + 1) x batch-size records)")
    skip_bad: bool = _f(False, "skip and count bad lines instead of stopping at the first")
    timeout_s: float = _f(300.0, "deadline of each request, in seconds")
    precision: str = _f("auto", "with --bundle: ONNX variant auto|fp32|fp16|int8")
    provider: str = _f("auto", "with --bundle: execution provider auto|cpu|cuda")

    def __post_init__(self) -> None:
        if not self.input:
            raise ValueError("an input file is required")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if (self.address is None) == (self.bundle is None):
            raise ValueError("give exactly one of --address (a server) or --bundle (in-process)")
        for name in ("batch_size", "max_in_flight"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.input == "-" and (self.kept is None or self.rejected is None):
            raise ValueError("reading stdin needs --kept and --rejected")

    def outputs(self) -> tuple[Path, Path]:
        """The kept and rejected paths (defaults beside the input)."""
        stem = Path(self.input).with_suffix("") if self.input.endswith(".jsonl") else Path(self.input)
        return (self.kept or Path(f"{stem}.kept.jsonl"), self.rejected or Path(f"{stem}.rejected.jsonl"))

    def to_item(self, obj: Any, where: str) -> Item:
        """The item of one record, per the field settings; errors name the line and field."""
        if not isinstance(obj, dict):
            raise InvalidArgument(f"{where}: must be a JSON object")
        if self.text_field in obj:
            return TextItem(_text(obj[self.text_field], f"{where}.{self.text_field}"))
        if self.response_field in obj:
            response = _text(obj[self.response_field], f"{where}.{self.response_field}")
            if self.response_only:
                return TextItem(response)
            return PairItem(_text(obj.get(self.prompt_field, ""), f"{where}.{self.prompt_field}"), response)
        if "messages" in obj:
            return item_from_obj({"messages": obj["messages"]}, where)
        raise InvalidArgument(f"{where}: needs a {self.text_field!r} field, or {self.prompt_field!r} + "
                              f"{self.response_field!r}, or 'messages'")


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{where}: must be a string, got {type(value).__name__}")
    return value


@dataclass
class Distribution:
    """Counts of probabilities in [0, 1] in fixed bins: constant memory, quantiles to 1/BINS."""

    counts: list[int] = field(default_factory=lambda: [0] * BINS)
    n: int = 0
    low: float = 1.0
    high: float = 0.0

    def add(self, p: float) -> None:
        """Count one probability."""
        self.counts[min(int(p * BINS), BINS - 1)] += 1
        self.n += 1
        self.low, self.high = min(self.low, p), max(self.high, p)

    def quantile(self, q: float) -> float:
        """The q-quantile, as the centre of its bin (clamped to the observed range)."""
        rank, seen = q * (self.n - 1), 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen > rank:
                return min(max((i + 0.5) / BINS, self.low), self.high)
        return self.high

    def histogram(self, bins: int = 10) -> list[int]:
        """Counts in ``bins`` equal-width bins over [0, 1]."""
        step = BINS // bins
        return [sum(self.counts[i : i + step]) for i in range(0, BINS, step)]


@dataclass
class FilterSummary:
    """What a run did: counts, outputs and the distribution of the compared probability."""

    config: FilterConfig
    model: str
    label: str
    kept: int = 0
    rejected: int = 0
    bad_lines: int = 0
    distribution: Distribution = field(default_factory=Distribution)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts, paths, quantiles and a 10-bin histogram."""
        kept_path, rejected_path = self.config.outputs()
        d = self.distribution
        quantiles = {} if not d.n else {"min": d.low, **{f"p{q}": d.quantile(q / 100) for q in QUANTILES},
                                       "max": d.high}
        return {"input": self.config.input, "model": self.model, "label": self.label,
                "threshold": self.config.threshold, "records": self.kept + self.rejected, "kept": self.kept,
                "rejected": self.rejected, "bad_lines_skipped": self.bad_lines, "kept_path": str(kept_path),
                "rejected_path": str(rejected_path), "quantiles": quantiles, "histogram": d.histogram()}

    def report(self) -> str:
        """The human summary the command prints."""
        s = self.to_dict()
        n = max(s["records"], 1)
        lines = [f"{s['records']} records from {s['input']} ({s['bad_lines_skipped']} bad lines skipped); "
                 f"model {s['model']}: kept when P({s['label']}) < {s['threshold']:g}",
                 f"  kept     {s['kept']:>9} ({100 * s['kept'] / n:5.1f}%) -> {s['kept_path']}",
                 f"  rejected {s['rejected']:>9} ({100 * s['rejected'] / n:5.1f}%) -> {s['rejected_path']}"]
        if s["quantiles"]:
            lines.append(f"  P({s['label']}): " + "  ".join(f"{k} {v:.3f}" for k, v in s["quantiles"].items()))
            top = max(s["histogram"])
            for i, c in enumerate(s["histogram"]):
                bar = "#" * (round(40 * c / top) if top else 0)
                lines.append(f"    [{i / 10:.1f}, {(i + 1) / 10:.1f}{']' if i == 9 else ')'} {c:>9} {bar}")
        return "\n".join(lines)


QUANTILES = (1, 10, 25, 50, 75, 90, 99)


async def run_filter(config: FilterConfig, client_kwargs: dict[str, Any] | None = None) -> FilterSummary:
    """Stream the input through the model and write the kept and rejected files.

    ``client_kwargs`` go to the client of ``config.address`` (TLS files, a token).
    """
    from rewardserve.service.client.reward_func import label_name, label_prob
    from rewardserve.service.jobs.streaming import LineCounts, ScoreSettings, open_scorer

    settings = ScoreSettings(model=config.model, timeout_s=config.timeout_s)
    counts = LineCounts()
    kept_path, rejected_path = config.outputs()
    async with open_scorer(config.address, config.bundle, settings, config.precision, config.provider,
                           **(client_kwargs or {})) as scorer:
        prob_of = label_prob(scorer.info, config.label)  # before reading: a wrong label fails at once
        summary = FilterSummary(config, scorer.info.name, label_name(scorer.info, config.label))
        with open(kept_path, "w", encoding="utf-8") as kept, open(rejected_path, "w", encoding="utf-8") as rejected:
            async for chunk, scores in scorer.stream(config.input, config.to_item, config.batch_size,
                                                     config.max_in_flight, config.skip_bad, counts):
                for record, s in zip(chunk, scores, strict=True):
                    p = prob_of(s.probabilities)
                    summary.distribution.add(p)
                    is_kept = p < config.threshold
                    summary.kept += is_kept
                    summary.rejected += not is_kept
                    extra = {"model": summary.model, "label": summary.label, "prob": p, "reward": s.reward,
                             "probabilities": dict(zip(scorer.info.labels, s.probabilities, strict=True))}
                    (kept if is_kept else rejected).write(_line({**record.obj, "rewardserve": extra}))
                kept.flush()  # readers (and a crash) see whole chunks as they finish
                rejected.flush()
    summary.bad_lines = counts.bad
    if config.summary is not None:
        config.summary.write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary


def _line(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False) + "\n"
