"""Small file readers shared by the stages (export writes hashes, the service checks them). Torch-free.

Example::

    file_sha256("models/hh-onnx/model_int8.onnx")   # '3f2a...' (64 hex digits)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK_BYTES = 1 << 20  # read 1 MiB at a time: ONNX files are hundreds of MB, memory stays flat


def file_sha256(path: str | Path) -> str:
    """Return the hex sha256 of a file, read in chunks of ``CHUNK_BYTES``."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()
