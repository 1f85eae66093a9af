"""The limit: raw ONNX Runtime offline, with the best batching a server could hope for.

Texts are tokenized beforehand (not timed), sorted by length, and run in batches of each
candidate size, by ``workers`` threads sharing one session (as the server's inference
workers do); the best items/s wins. The session is built exactly as the server builds its
own (same variant file, provider, intra-op threads and session options), so the ratio
server / limit measures only what serving costs: gRPC, queueing, tokenizing, padding.
:func:`best_limit` also tries one worker with every core, and keeps the faster.

Example::

    limit = measure_limit(bundle, "fp32", workload.encoded, threads=2, batch_sizes=(1, 16, 64))
    limit["items_per_s"], limit["best_batch_size"]
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rewardserve.service.backends.ort import OrtBackend
from rewardserve.service.config import Provider
from rewardserve.service.domain import Encoded
from rewardserve.service.engine.models import padded as padded_runner

from rewardserve.manifest import Manifest

logger = logging.getLogger(__name__)


def best_limit(bundle: Path, variant: str, encoded: Sequence[Encoded], server_threading: tuple[int, int],
               batch_sizes: Sequence[int], provider: Provider = Provider.cpu, min_time_s: float = 2.0) -> dict:
    """The faster of the server's (workers, threads) and one worker with every core."""
    configs = dict.fromkeys([server_threading, (1, 0 if provider is Provider.cuda else os.cpu_count() or 1)])
    results = [measure_limit(bundle, variant, encoded, threads, batch_sizes, provider, min_time_s, workers)
               for workers, threads in configs]
    best = max(results, key=lambda r: r["items_per_s"])
    best["alternatives"] = [{k: r[k] for k in ("workers", "threads", "best_batch_size", "items_per_s")}
                            for r in results]
    return best


def sweep(run: Callable[[list], object], ordered: Sequence, batch_sizes: Sequence[int], workers: int,
          min_time_s: float, label: str = "") -> dict:
    """Best items/s over ``batch_sizes`` on length-sorted ``ordered``; ``run`` takes one batch of encoded items.

    Each size runs its batches on ``workers`` threads, round after round, until ``min_time_s`` has passed.
    """
    tokens = sum(e.num_tokens for e in ordered)
    per_size = {}
    with ThreadPoolExecutor(workers, thread_name_prefix="limit") as pool:
        for size in batch_sizes:
            batches = [list(ordered[i : i + size]) for i in range(0, len(ordered), size)]
            run(batches[-1])  # warm up the longest shapes
            rounds, start = 0, time.perf_counter()
            while True:
                list(pool.map(run, batches))
                rounds += 1
                elapsed = time.perf_counter() - start
                if elapsed >= min_time_s:
                    break
            per_size[size] = {"items_per_s": rounds * len(ordered) / elapsed, "tokens_per_s": rounds * tokens / elapsed}
            logger.info("limit %s batch %d: %.1f items/s", label, size, per_size[size]["items_per_s"])
    best = max(per_size, key=lambda s: per_size[s]["items_per_s"])
    return {"best_batch_size": best, "items_per_s": per_size[best]["items_per_s"],
            "tokens_per_s": per_size[best]["tokens_per_s"], "by_batch_size": {str(k): v for k, v in per_size.items()}}


def measure_limit(bundle: Path, variant: str, encoded: Sequence[Encoded], threads: int,
                  batch_sizes: Sequence[int], provider: Provider = Provider.cpu,
                  min_time_s: float = 2.0, workers: int = 1) -> dict:
    """Best offline items/s over ``batch_sizes`` on length-sorted, pre-tokenized items."""
    manifest = Manifest.load(bundle)
    backend = OrtBackend(manifest.variant(variant).path(bundle), provider, threads)
    runner = padded_runner(backend, manifest.pad_token_id)  # what the server's batcher runs
    ordered = sorted(encoded, key=lambda e: e.num_tokens)
    r = sweep(runner, ordered, batch_sizes, workers, min_time_s, f"{variant} ({workers} workers x {threads} threads)")
    best = r["best_batch_size"]
    padded = sum(len(b) * max(e.num_tokens for e in b)
                 for b in (ordered[i : i + best] for i in range(0, len(ordered), best)))
    return {"variant": variant, "provider": backend.provider, "threads": threads, "workers": workers,
            "best_batch_size": best, "items_per_s": r["items_per_s"], "tokens_per_s": r["tokens_per_s"],
            "padding_efficiency": sum(e.num_tokens for e in ordered) / padded, "by_batch_size": r["by_batch_size"]}
