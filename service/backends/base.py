"""What every backend is: load a variant file, run a padded batch, say where it runs.

The engine holds a :class:`Backend` per model, pads each batch (``input_ids``, ``attention_mask``,
``token_type_ids``, ``position_ids`` as int64 arrays; to a multiple of ``pad_to_multiple`` when
the backend asks for bounded shapes) and calls ``run`` from its inference workers; nothing else
of a backend is visible to it, so a new runtime is a new module here.

A served model is a *combination*: (variant file, runtime, precision, device). The engine asks
:func:`open_backend` for the one to serve; ``backends.choice`` picks it from the manifest
(``--backend auto``: the fastest that passed parity for this host) and says why.

Example::

    served = open_backend("bundle", Manifest.load("bundle"), config)
    served.backend.provider      # "OpenVINO:CPU:bf16", "CPUExecutionProvider": what actually runs
    logits = served.backend.run(pad_batch(items, pad_id))   # float32 [len(items), num_labels]
    served.reason                # why this combination (logged at load)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import numpy as np
from rewardserve.service.backends.runtimes import Served, open_file, resolve
from rewardserve.service.config import ServiceConfig

from rewardserve.manifest import Manifest

__all__ = ["Backend", "Served", "open_backend", "open_file", "resolve"]


class Backend(Protocol):
    """Runs padded batches of one model variant; ``run`` is called from worker threads."""

    path: Path  # the variant file
    provider: str  # where it actually runs (never what was merely asked for), e.g. "OpenVINO:CPU:bf16"
    pad_to_multiple: int  # 0: pad to the batch's longest; k: to a multiple of k (bounded shapes)
    packed: bool  # run() packs the padded batch into rows of several items (backends/packing.py)

    def run(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Float32 logits, one row per batch row, in order (inputs the model lacks are ignored)."""
        ...


def open_backend(directory: str | Path, manifest: Manifest, config: ServiceConfig) -> Served:
    """Choose the combination for this bundle, host and config, and open its backend (blocking)."""
    from rewardserve.service.backends.choice import serve_combination

    return serve_combination(Path(directory), manifest, config)
