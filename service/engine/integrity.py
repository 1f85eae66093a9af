"""Load-time checks that an ONNX bundle's files belong together.

A bundle whose files were edited, corrupted or mixed up after export can load without any
error and then score garbage. These checks turn that into a :class:`BundleError` naming the
file and the problem, before the model serves:

* every file the manifest hashes (the served ONNX variant, ``tokenizer.json`` when the
  manifest records its hash) still has that sha256;
* the tokenizer's largest token id fits the model's embedding table (a tokenizer with added
  tokens, or another model's tokenizer): the model runs that id once, and ONNX Runtime's CPU
  kernels refuse out-of-range ids. CUDA kernels do not check, so on CUDA only the hashes guard.

Example::

    check_sha256(bundle / "model_int8.onnx", variant.sha256, bundle / "manifest.json")
    check_vocab_fits(encoder, backend, manifest.pad_token_id, bundle / "tokenizer.json")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rewardserve.service.backends.base import Backend
from rewardserve.service.domain import Encoded
from rewardserve.service.engine.encoding import TextEncoder, pad_batch

from rewardserve.bundle import BundleError
from rewardserve.files import file_sha256


def check_sha256(path: Path, expected: str, manifest_path: Path) -> None:
    """Raise BundleError unless ``path`` hashes to ``expected`` (an empty ``expected`` skips the check)."""
    if not expected:  # bundles exported before the hash was recorded
        return
    actual = file_sha256(path)
    if actual != expected:
        raise BundleError(
            f"{path}: sha256 {actual[:16]}... does not match {expected[:16]}... recorded in {manifest_path}: "
            "the file was changed or corrupted after export (export the bundle again)"
        )


def check_vocab_fits(encoder: TextEncoder, backend: Backend, pad_id: int, tokenizer_path: Path,
                     embedding_rows: int = 0) -> None:
    """Raise BundleError if the tokenizer can produce ids the model's embedding does not have.

    With the embedding size the manifest records (``embedding_rows``) the check is static and holds
    for every runtime (OpenVINO and CUDA kernels read out-of-range ids without an error); older
    manifests fall back to running the largest id once, which ONNX Runtime's CPU kernels refuse.
    """
    top = encoder.max_token_id
    where = f"{tokenizer_path}: does not match the model {backend.path.name}: the tokenizer's token id {top} " \
            f"(a vocabulary of {top + 1}) is outside the model's embedding table"
    if embedding_rows:
        if top >= embedding_rows:
            raise BundleError(f"{where} ({embedding_rows} rows, recorded in the manifest)")
        return
    probe = Encoded(np.array([top], np.int64), np.zeros(1, np.int64), truncated=False)
    try:
        backend.run(pad_batch([probe], pad_id))
    except Exception as e:  # ORT raises its own InvalidArgument/Fail types
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise BundleError(f"{where} ({reason})") from e
