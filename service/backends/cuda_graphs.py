"""ONNX Runtime CUDA graphs: one captured graph per (rows, length) bucket, replayed with new inputs.

Behind ``--cuda-graphs`` (off by default) and UNMEASURED: written where no GPU was available,
so whether it beats plain I/O binding is not known (README). A CUDA graph replays fixed kernels
on fixed device buffers, so every shape needs its own graph and buffers: lengths come in the
engine's buckets (``pad_to_multiple``), and rows are padded here to a power of two (copies of
the first row, sliced off again) up to the batcher's ``max_batch_items``. ONNX Runtime keeps one
graph per ``gpu_graph_id`` run option. A replay writes the shared buffers, so runs are serialised
(CUDA serves with one inference worker anyway). The warm-up runs every (rows, length) bucket
before SERVING, so no request pays for a capture.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import numpy as np


def row_buckets(max_rows: int) -> list[int]:
    """Powers of two up to ``max_rows``, and ``max_rows`` itself: the row counts graphs are captured for."""
    rows, out = 1, []
    while rows < max_rows:
        out.append(rows)
        rows *= 2
    return [*out, max(1, max_rows)]


def bucket_rows(n: int, max_rows: int) -> int:
    """The row count a batch of ``n`` rows runs at."""
    return next(r for r in row_buckets(max(max_rows, n)) if r >= n)


class CudaGraphs:
    """Captured graphs of one session, keyed by shape; ``run`` pads rows, replays, slices."""

    def __init__(self, session, input_names: list[str], output_name: str, max_rows: int):
        import onnxruntime as ort

        self._ort, self.session = ort, session
        self.input_names, self.output_name, self.max_rows = input_names, output_name, max_rows
        self.num_labels = int(session.get_outputs()[0].shape[-1])
        self._graphs: dict[tuple[int, int], tuple] = {}
        self._lock = threading.Lock()

    def _graph(self, rows: int, length: int):
        key = (rows, length)
        if key not in self._graphs:
            ort = self._ort
            buffers = {n: ort.OrtValue.ortvalue_from_numpy(np.zeros((rows, length), np.int64), "cuda", 0)
                       for n in self.input_names}
            output = ort.OrtValue.ortvalue_from_shape_and_type((rows, self.num_labels), np.float32, "cuda", 0)
            binding = self.session.io_binding()
            for name, value in buffers.items():
                binding.bind_ortvalue_input(name, value)
            binding.bind_ortvalue_output(self.output_name, output)
            options = ort.RunOptions()
            options.add_run_config_entry("gpu_graph_id", str(len(self._graphs) + 1))
            self._graphs[key] = (buffers, output, binding, options)
        return self._graphs[key]

    def run(self, feed: Mapping[str, np.ndarray]) -> np.ndarray:
        """Float32 logits of a padded batch, replayed on the graph of its bucket."""
        n, length = feed["input_ids"].shape
        rows = bucket_rows(n, self.max_rows)
        with self._lock:
            buffers, output, binding, options = self._graph(rows, length)
            for name, value in buffers.items():
                array = np.ascontiguousarray(feed[name], np.int64)
                if rows > n:  # extra rows repeat the first (valid mask, finite logits), then are dropped
                    array = np.concatenate([array, np.repeat(array[:1], rows - n, axis=0)])
                value.update_inplace(array)
            self.session.run_with_iobinding(binding, options)
            return output.numpy()[:n].astype(np.float32)
