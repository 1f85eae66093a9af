"""What every backend is: load a variant file, run a padded batch, say where it runs.

The engine holds a :class:`Backend` per model, pads each batch (``input_ids``, ``attention_mask``,
``token_type_ids``, ``position_ids`` as int64 arrays) and calls ``run`` from its inference
workers; nothing else of a backend is visible to it, so a new runtime is a new module here.

Example::

    backend = open_backend("bundle/model_int8.onnx", Provider.cpu, intra_op_threads=1)
    logits = backend.run(pad_batch(items, pad_id))   # float32 [len(items), num_labels]
    backend.provider                             # "CPUExecutionProvider": the one actually in use
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import numpy as np
from rewardserve.service.config import Provider


class Backend(Protocol):
    """Runs padded batches of one model variant; ``run`` is called from worker threads."""

    path: Path  # the variant file
    provider: str  # where it actually runs (never what was merely asked for)

    def run(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Float32 logits, one row per batch row, in order (inputs the model lacks are ignored)."""
        ...


def open_backend(path: str | Path, provider: Provider, intra_op_threads: int = 0) -> Backend:
    """Load a variant file with the backend for ``provider`` (ONNX Runtime today)."""
    from rewardserve.service.backends.ort import OrtBackend  # the runtime is imported only when used

    return OrtBackend(path, provider, intra_op_threads)


def resolve(provider: Provider) -> Provider:
    """Return cpu or cuda for ``auto`` (CUDA when the runtime offers it); refuse cuda when it does not."""
    from rewardserve.service.backends.ort import resolve_provider

    return resolve_provider(provider)
