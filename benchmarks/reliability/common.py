"""Shared pieces of the reliability suite: sections with checks, servers, expected scores, items.

Every scenario returns a :class:`Section`: the figures it measured and the checks those
figures must pass. Expected results come from :class:`SoloScorer`, which scores each item
alone (a batch of one) in this process, with no server and no batching, so a response that
differs from it was mixed up, batched wrongly or sent to the wrong caller.
"""

from __future__ import annotations

import asyncio
import random
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rewardserve.benchmarks.server_proc import ServerProcess, free_port
from rewardserve.benchmarks.workload import HH_DEV, read_texts
from rewardserve.service.config import ModelSource, ServiceConfig
from rewardserve.service.edge import convert
from rewardserve.service.edge.server import RewardServer
from rewardserve.service.engine.models import ModelRegistry
from rewardserve.service.metrics import ServiceMetrics

from rewardserve.v1 import reward_pb2 as pb

WORDS = ["the", "reward", "model", "scores", "a", "response", "to", "prompt", "with", "care", "and", "trainer",
         "learns", "from", "it", "please", "explain", "how", "bake", "bread", "at", "home", "without", "yeast",
         "quickly", "Human:", "Assistant:", "why", "42", "ok", "\n\n", "naïve", "café", "日本語", "🙂"]


@dataclass(frozen=True)
class Check:
    """One pass/fail criterion and what was measured against it."""

    name: str
    ok: bool
    detail: str = ""
    gated: bool = True  # False: a timing reported but not required (the quick subset on a shared machine)


@dataclass
class Section:
    """One scenario's figures and the checks they must pass."""

    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: Any = "", gated: bool = True) -> bool:
        """Record a check; return whether it passed. ``gated=False``: reported, not required."""
        self.checks.append(Check(name, bool(ok), str(detail), gated))
        return bool(ok)

    @property
    def ok(self) -> bool:
        """True when there is at least one check and every check passed."""
        return bool(self.checks) and all(c.ok for c in self.checks if c.gated)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "ok": self.ok, "figures": self.figures,
                "checks": [c.__dict__ for c in self.checks]}


def server_config(models: dict[str, Path], **overrides) -> ServiceConfig:
    """A loopback, CPU, fp32 ONNX Runtime config on free ports with one thread per batch.

    ONNX Runtime, not ``backend auto``: the fault scenarios wrap its session (on a trained
    bundle auto may choose OpenVINO, and nothing would be wrapped).
    """
    values = dict(models=tuple(ModelSource(n, str(p)) for n, p in models.items()), port=0, metrics_port=None,
                  backend="onnxruntime", precision="fp32", provider="cpu", intra_op_threads=1, tokenizer_workers=1,
                  grace_period_s=2.0)
    values.update(overrides)
    return ServiceConfig(**values)


class InProcessServer:
    """A :class:`RewardServer` on its own event loop in a daemon thread; a context manager.

    In-process so a scenario can reach the loaded models (wrap a runner's session, read a
    batcher's depth); the load comes from the caller's own event loop over real gRPC.
    """

    def __init__(self, config: ServiceConfig):
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="reliability-server")
        self.server = RewardServer(config)

    def call(self, coro, timeout_s: float = 120.0):
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def __enter__(self) -> InProcessServer:
        self.thread.start()
        self.call(self.server.start())
        self.call(self.server.wait_ready())
        return self

    def __exit__(self, *exc) -> None:
        self.call(self.server.stop(0.5))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def target(self) -> str:
        """``host:port`` for gRPC clients."""
        return f"127.0.0.1:{self.server.port}"

    @property
    def registry(self) -> ModelRegistry:
        """The loaded models."""
        return self.server.servicer.registry

    def sample(self, name: str, **labels) -> float:
        """One Prometheus sample of this server (0 when absent)."""
        return self.server.metrics.registry.get_sample_value(name, labels) or 0.0


SERVER_PROCESSES = 2


def cli_server(name: str, models: dict[str, Path], log_dir: Path, metrics: bool = True, **flags) -> ServerProcess:
    """``rewardserve serve`` as a subprocess on free loopback ports (start it with ``.start()``).

    Two server processes unless ``processes`` is given: the suite checks the multi-process server.
    """
    flags = {"processes": SERVER_PROCESSES, **flags}
    port = free_port()
    metrics_port = free_port() if metrics else None
    argv = [sys.executable, "-m", "rewardserve.cli", "serve", "--port", str(port),
            "--metrics-port", str(metrics_port) if metrics else "off"]
    for model, path in models.items():
        argv += ["--model", f"{model}={path}"]
    for key, value in flags.items():
        argv += ["--" + key.replace("_", "-"), str(value)]
    return ServerProcess(name, argv, port, metrics_port, log_dir / f"{name}.log")


@dataclass(frozen=True)
class Expected:
    """An item's solo result: logits, token count, truncation and token ids."""

    logits: np.ndarray
    num_tokens: int
    truncated: bool
    ids: tuple[int, ...]

    def matches(self, score: pb.ItemScore, tol: float) -> bool:
        """Whether a served score is this item's (same tokens, logits within ``tol``)."""
        got = np.asarray(score.logits, np.float32)
        return (score.num_tokens == self.num_tokens and score.truncated == self.truncated
                and got.shape == self.logits.shape and bool(np.allclose(got, self.logits, rtol=tol, atol=tol)))


class SoloScorer:
    """Expected results: each item formatted, tokenized and run alone by the served variant.

    Example::

        scorer = SoloScorer({"clf": Path("bundle")})
        expected = scorer.expect("clf", pb.Item(text="hello"))
    """

    def __init__(self, models: dict[str, Path], precision: str = "fp32"):
        config = server_config(models, precision=precision, max_items_per_request=1, max_queue_items=1)
        self.registry = ModelRegistry.load(config, ServiceMetrics(), warm_up=False)

    def expect(self, model: str, item: pb.Item) -> Expected:
        """Score one item alone; raises the service's InvalidArgument for a bad item."""
        m = self.registry.get(model)
        domain = convert.score_request_from_pb(pb.ScoreRequest(items=[item]), 1).items
        [enc] = m.prepare(domain, m.spec.truncation_side)
        logits = m.run_batch([enc])[0]
        return Expected(np.asarray(logits, np.float32), enc.num_tokens, enc.truncated, tuple(enc.ids.tolist()))

    def close(self) -> None:
        """Release the preparation threads."""
        asyncio.run(self.registry.stop())


def random_items(rng: random.Random, n: int, max_words: int) -> list[pb.Item]:
    """Items of every form (text, prompt + response, conversation), of widely mixed lengths.

    Real HH dialogues are mixed in when the shared data is present.
    """
    real = read_texts(HH_DEV, 400) if HH_DEV.is_file() else []

    def text(k: int) -> str:
        if real and rng.random() < 0.3:
            return rng.choice(real)
        return " ".join(rng.choice(WORDS) for _ in range(k))

    items = []
    for i in range(n):
        k = max(1, int(max_words * rng.random() ** 2))  # many short, a tail past max_length
        form = i % 3
        if form == 0:
            items.append(pb.Item(text=f"{text(k)} #{i}"))
        elif form == 1:
            items.append(pb.Item(pair=pb.PromptResponse(prompt=text(max(1, k // 3)), response=f"{text(k)} #{i}")))
        else:
            msgs = [pb.ChatMessage(role=r, content=text(max(1, k // 2))) for r in ("user", "assistant")]
            msgs[-1].content += f" #{i}"
            items.append(pb.Item(conversation=pb.Conversation(messages=msgs)))
    return items


def distinct_pool(scorer: SoloScorer, model: str, candidates: list[pb.Item], n: int,
                  tol: float) -> list[tuple[pb.Item, Expected]]:
    """Up to ``n`` items whose solo results all differ from each other by more than the tolerance allows.

    Two items' logits differ by over 3x the matching tolerance (or their token counts differ),
    so a response that went to the wrong caller cannot pass for the right one by chance.
    """

    def apart(a: Expected, b: Expected) -> bool:
        if a.num_tokens != b.num_tokens or a.truncated != b.truncated:
            return True
        bound = 3 * tol * (1 + np.maximum(np.abs(a.logits), np.abs(b.logits)))
        return bool(np.any(np.abs(a.logits - b.logits) > bound))

    kept: list[tuple[pb.Item, Expected]] = []
    for item in candidates:
        e = scorer.expect(model, item)
        if all(apart(e, k) for _, k in kept):
            kept.append((item, e))
        if len(kept) == n:
            break
    return kept


def percentile_ms(values_s: list[float], q: float) -> float | None:
    """The q-th percentile of durations in seconds, in milliseconds (None when empty)."""
    return float(np.percentile(np.asarray(values_s) * 1000.0, q)) if values_s else None
