"""What this host's CPU offers, read once from ``/proc/cpuinfo``."""

from __future__ import annotations

from functools import cache
from pathlib import Path

BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo is absent)."""
    info = Path("/proc/cpuinfo")
    if not info.is_file():
        return frozenset()
    for line in info.read_text().splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX-512 BF16 or AMX), as OpenVINO and torch need to gain from it."""
    return any(f in cpu_flags() for f in BF16_FLAGS)
