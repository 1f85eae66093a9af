"""Readiness shared between the processes of ``serve --processes N``: one byte each, in a mapped file.

The supervisor creates the file in its work directory; each server process sets its own byte
while it is loaded and serving and reads all of them to decide what its health service reports.
A memory-mapped file rather than ``multiprocessing.shared_memory``: the children are separate
interpreters, and each one's resource tracker would unlink a shared segment when it exits.
"""

from __future__ import annotations

import mmap
from pathlib import Path


class ReadyFlags:
    """One byte per process: 1 while that process is loaded and serving.

    Example::

        flags = ReadyFlags.create(Path(work_dir) / "ready", 2)   # the supervisor
        ReadyFlags.attach(Path(work_dir) / "ready", 2).set(0, True)   # process 0, once serving
    """

    def __init__(self, path: Path, count: int):
        self.path, self.count = Path(path), count
        self._file = open(self.path, "r+b")  # noqa: SIM115 (closed in close())
        self._map = mmap.mmap(self._file.fileno(), 2 * count)  # then one sticky "has been ready" byte each

    @classmethod
    def create(cls, path: Path, count: int) -> ReadyFlags:
        """New flags, all 0."""
        Path(path).write_bytes(bytes(2 * count))
        return cls(path, count)

    @classmethod
    def attach(cls, path: Path, count: int) -> ReadyFlags:
        """The supervisor's flags, from a server process."""
        return cls(path, count)

    def set(self, index: int, ready: bool) -> None:
        """Mark process ``index`` ready or not."""
        self._map[index] = 1 if ready else 0
        if ready:
            self._map[self.count + index] = 1

    def ready(self, index: int) -> bool:
        """Whether process ``index`` is ready."""
        return bool(self._map[index])

    def all_have_been_ready(self) -> bool:
        """Whether every process has been ready at some time (whatever it is now): the server has served."""
        return all(self._map[self.count:])

    def all_ready(self) -> bool:
        """Whether every process is ready."""
        return all(self._map[: self.count])

    def close(self) -> None:
        """Unmap and close the file."""
        self._map.close()
        self._file.close()

