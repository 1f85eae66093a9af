"""Opening a backend for one combination (runtime, precision, device), and what was opened.

Used by ``backends.choice`` (which combination) and re-exported by ``backends.base``; the runtime
modules are imported only when used, so each stays optional.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardserve.service.config import Provider

from rewardserve.manifest import Runtime, ServedPrecision, VariantInfo


@dataclass(frozen=True)
class Served:
    """The combination a model is served with, the backend running it, and why it was chosen."""

    backend: Any  # a backends.base.Backend (not imported: base imports this module)
    variant: VariantInfo
    runtime: Runtime
    precision: ServedPrecision
    device: Provider  # cpu | cuda: what the token budget, wait and threading follow
    workers: int
    threads: int
    parity_passed: bool
    reason: str
    note: str = ""  # e.g. "fp16 parity measured on CPU, unverified on CUDA"

    @property
    def packed(self) -> bool:
        """Whether the backend runs packed rows (several items per row, no padding between them)."""
        return self.backend.packed

    @property
    def execution_provider(self) -> str:
        """What GetModel reports: the backend's provider, with the parity note if any."""
        return f"{self.backend.provider} ({self.note})" if self.note else self.backend.provider


def open_file(path: str | Path, runtime: Runtime, precision: ServedPrecision, device: Provider, threads: int,
              streams: int = 1, cpu_fallback: bool = False, cuda_graphs_rows: int = 0) -> Any:  # a Backend
    """Open one variant file on one runtime (imported only when used)."""
    if Runtime(runtime) is Runtime.openvino:
        from rewardserve.service.backends.openvino import OpenVinoBackend

        return OpenVinoBackend(path, ServedPrecision(precision).value, threads=threads, streams=streams)
    from rewardserve.service.backends.ort import OrtBackend

    return OrtBackend(path, device, threads, cpu_fallback=cpu_fallback, cuda_graphs_rows=cuda_graphs_rows)


def resolve(provider: Provider) -> Provider:
    """Return cpu or cuda for ``auto`` (CUDA when the runtime offers it); refuse cuda when it does not."""
    from rewardserve.service.backends.ort import resolve_provider

    return resolve_provider(provider)
