"""How many CPUs this process may really use: its affinity and its cgroup's CPU quota.

``os.cpu_count()`` counts the host's CPUs; a container limited to 4 CPUs on a 64-core host
would then start 64 busy threads. Every automatic thread and process count of the server comes
from :func:`available_cpus` instead.

Example::

    available_cpus()   # 2 on a 2-core VM; 4 in a container with cpu.max "400000 100000"
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_quota(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs the cgroup's quota allows (cgroup v2 ``cpu.max``, else v1 ``cfs_quota_us``); None: no quota."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """CPUs this process may use: its affinity, bounded by the cgroup quota (rounded up), at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_quota(root)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)
