"""The ONNX Runtime backend: one session for one model variant; pads a batch and returns logits.

Runs in worker threads (ONNX Runtime releases the GIL). On CUDA, inputs are bound with I/O
binding so the output stays on the device until one copy back, and sequence lengths are padded
to multiples of :data:`CUDA_PAD_MULTIPLE` (``pad_to_multiple``) so fp16 sees a bounded set of
shapes, each warmed up before the server says SERVING.

No silent provider change: ONNX Runtime creates a session even when the CUDA provider fails to
load (missing CUDA/cuDNN libraries, no device), on the CPU provider alone. Asked for CUDA, the
backend checks ``session.get_providers()`` and raises :class:`ProviderUnavailable`; with
``cpu_fallback`` (``--provider auto``) it logs the fallback and runs on CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort
from rewardserve.service.config import Provider

from rewardserve.bundle import BundleError

logger = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
KNOWN_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
CUDA_PAD_MULTIPLE = 32


class ProviderUnavailable(BundleError):
    """The execution provider asked for could not run the model (ONNX Runtime fell back to another)."""


def version() -> str:
    """The ONNX Runtime version."""
    return ort.__version__


def resolve_provider(provider: Provider) -> Provider:
    """Return cpu or cuda: ``auto`` means CUDA when this onnxruntime build offers it."""
    available = ort.get_available_providers()
    if provider is Provider.auto:
        return Provider.cuda if CUDA in available else Provider.cpu
    if provider is Provider.cuda and CUDA not in available:
        raise ValueError(f"provider cuda asked for, but onnxruntime offers only {available} (install onnxruntime-gpu)")
    return provider


class OrtBackend:
    """One ONNX Runtime session; ``run(batch)`` returns float32 logits ``[len(batch), num_labels]``.

    Example::

        backend = OrtBackend("bundle/model_fp32.onnx", Provider.cpu, intra_op_threads=2)
        logits = backend.run(pad_batch(encoder.encode_batch(["a", "b"], Truncation.left), pad_id=0))
    """

    packed = False  # padded rows only (packing is OpenVINO's: backends/packing.py)

    def __init__(self, path: str | Path, provider: Provider, intra_op_threads: int = 0, cpu_fallback: bool = False,
                 cuda_graphs_rows: int = 0):
        path = Path(path)
        if not path.is_file():
            raise BundleError(f"{path}: not found")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = 1
        # Spinning workers would steal the cores the event loop and the tokenizer need.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        cuda = (CUDA, {"enable_cuda_graph": "1"}) if cuda_graphs_rows else CUDA  # cuda_graphs.py: unmeasured
        providers = [cuda, CPU] if provider is Provider.cuda else [CPU]
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as e:  # ORT raises its own Fail/InvalidGraph types
            raise BundleError(f"{path}: cannot load ONNX model: {e}") from e
        self.path = path
        self.provider = self.session.get_providers()[0]
        if provider is Provider.cuda and self.provider != CUDA:
            reason = (f"onnxruntime {ort.__version__} created the session on {self.session.get_providers()} only: "
                      "the CUDA provider failed to load (its CUDA/cuDNN libraries or the GPU; onnxruntime's log "
                      "above names what is missing)")
            if not cpu_fallback:
                raise ProviderUnavailable(f"{path}: provider cuda asked for, but {reason}")
            logger.warning("%s: provider auto: %s; running on %s instead", path.name, reason, self.provider)
        self.pad_to_multiple = CUDA_PAD_MULTIPLE if self.provider == CUDA else 0
        self.input_names = [i.name for i in self.session.get_inputs()]
        unknown = [n for n in self.input_names if n not in KNOWN_INPUTS]
        if unknown or "input_ids" not in self.input_names:
            raise BundleError(f"{path}: unsupported inputs {self.input_names} (expected a subset of {KNOWN_INPUTS})")
        outputs = [o.name for o in self.session.get_outputs()]
        self.output_name = "logits" if "logits" in outputs else outputs[0]
        self._use_io_binding = self.provider == CUDA
        self.row_buckets = [1]  # the batch sizes the warm-up runs per length bucket
        self._graphs = None
        if cuda_graphs_rows and self.provider == CUDA:
            from rewardserve.service.backends.cuda_graphs import CudaGraphs, row_buckets

            self._graphs = CudaGraphs(self.session, self.input_names, self.output_name, cuda_graphs_rows)
            self.row_buckets = row_buckets(cuda_graphs_rows)
        logger.info("loaded %s on %s (inputs %s)", path.name, self.provider, self.input_names)

    def run(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Run a padded batch and return float32 logits, one row per batch row."""
        feed = {k: v for k, v in inputs.items() if k in self.input_names}
        if self._graphs is not None:
            return self._graphs.run(feed)
        if self._use_io_binding:
            binding = self.session.io_binding()
            for name, array in feed.items():
                binding.bind_cpu_input(name, array)
            binding.bind_output(self.output_name, "cuda")
            self.session.run_with_iobinding(binding)
            logits = binding.copy_outputs_to_cpu()[0]
        else:
            (logits,) = self.session.run([self.output_name], feed)
        logits = np.asarray(logits, np.float32)  # fp16 variants return float16
        # No reshape to len(batch): the batcher checks the row count and must see a mismatch.
        return logits if logits.ndim == 2 else logits.reshape(logits.shape[0], -1)
