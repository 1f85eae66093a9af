"""Short throughput measurements of ONNX variants (sequences/s, tokens/s at one batch shape).

Used by the export report and by ``benchmarks/export_speed.py``. On CUDA, inputs and outputs
are bound to the device (I/O binding) so host copies are not what is measured.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def make_session(path: Path, provider: str = CPU, intra_op_threads: int = 0):
    """Open an ONNX Runtime session on exactly ``provider`` (no silent CPU fallback)."""
    import onnxruntime as ort

    if provider not in ort.get_available_providers():
        raise ValueError(f"provider {provider} is not available (have {ort.get_available_providers()})")
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    session = ort.InferenceSession(str(path), options, providers=[provider])
    if session.get_providers()[0] != provider:
        raise ValueError(f"{path}: session runs on {session.get_providers()}, not {provider}")
    return session


def synthetic_feeds(
    input_names: list[str], batch_size: int, seq_len: int, vocab_size: int, pad_token_id: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """Return a full (unpadded) batch of random token ids, avoiding the pad id."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab_size, size=(batch_size, seq_len), dtype=np.int64)
    ids[ids == pad_token_id] = (pad_token_id + 1) % vocab_size
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return {n: feeds[n] for n in input_names}


def measure(session, feeds: dict[str, np.ndarray], min_time_s: float = 1.0, warmup: int = 2, min_iters: int = 3,
            clock: str = "wall") -> dict[str, Any]:
    """Time repeated runs of one batch; return sequences/s, tokens/s and the batch shape.

    ``clock="cpu"`` counts the calling thread's CPU time instead of wall time: with a
    one-thread session ONNX Runtime computes on the calling thread, so this is the work of
    one inference, unaffected by other processes competing for the cores (a shared machine).
    """
    batch, seq_len = feeds["input_ids"].shape
    run = _io_binding_runner(session, feeds) if session.get_providers()[0] == CUDA else _plain_runner(session, feeds)
    now = {"wall": time.perf_counter, "cpu": time.thread_time}[clock]
    for _ in range(warmup):
        run()
    iters, start = 0, now()
    while iters < min_iters or now() - start < min_time_s:
        run()
        iters += 1
    elapsed = now() - start
    return {
        "provider": session.get_providers()[0],
        "clock": clock,
        "batch_size": int(batch),
        "seq_len": int(seq_len),
        "iterations": iters,
        "latency_ms": 1000 * elapsed / iters,
        "sequences_per_s": batch * iters / elapsed,
        "tokens_per_s": batch * seq_len * iters / elapsed,
    }


def _plain_runner(session, feeds):
    def run():
        session.run(["logits"], feeds)

    return run


def _io_binding_runner(session, feeds):
    import onnxruntime as ort

    binding = session.io_binding()
    for name, array in feeds.items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0))
    binding.bind_output("logits", "cuda", 0)

    def run():
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()

    return run


def measure_file(path: Path, feeds: dict[str, np.ndarray], provider: str = CPU, min_time_s: float = 1.0) -> dict[str, Any]:
    """Open ``path`` on ``provider`` and measure it."""
    result = measure(make_session(path, provider), feeds, min_time_s)
    logger.info(
        "throughput %s on %s: %.1f seq/s, %.0f tok/s (batch %d x %d)", Path(path).name, provider,
        result["sequences_per_s"], result["tokens_per_s"], result["batch_size"], result["seq_len"],
    )
    return result
