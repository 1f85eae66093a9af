"""CPU seconds of a whole process tree: a server, its worker processes and their children.

``psutil.Process.cpu_times()`` of the root counts its own threads and only the children it has
already *reaped*; a multi-process server's live workers would be missed. The meter sums, over
the root and every live descendant, ``user + system + children_user + children_system``: a
process is counted by itself while it lives and, once its parent reaps it, inside the parent's
``children_*``, so every CPU second is counted once. (A process reparented to init when its
parent dies first is lost; servers under test reap their own workers.)

Example::

    meter = TreeCpu(server_pid)
    before = meter.cpu_s()
    ...  # load
    cores = (meter.cpu_s() - before) / wall_s
"""

from __future__ import annotations

import logging

import psutil

logger = logging.getLogger(__name__)


def _total(times) -> float:
    return times.user + times.system + getattr(times, "children_user", 0.0) + getattr(times, "children_system", 0.0)


class TreeCpu:
    """CPU seconds used so far by a process and all its descendants (live, or reaped by a member)."""

    def __init__(self, pid: int):
        self.root = psutil.Process(pid)

    def processes(self) -> list[psutil.Process]:
        """The root and its live descendants."""
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_s(self) -> float:
        """CPU seconds of the tree (user + system, reaped children included)."""
        total = 0.0
        for p in self.processes():
            try:  # a zombie still has its times; one gone already is in its parent's children_*
                total += _total(p.cpu_times())
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return total

    def count(self) -> int:
        """How many processes the tree has now."""
        return len(self.processes())
