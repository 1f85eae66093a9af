"""fp16 on the CUDA execution provider; skipped cleanly without a GPU."""

from __future__ import annotations

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        "CUDAExecutionProvider" not in ort.get_available_providers(),
        reason="needs onnxruntime-gpu with CUDAExecutionProvider (CPU-only onnxruntime installed)",
    ),
]


def test_fp16_on_cuda_matches_fp32_and_io_binding_runs(exported):
    from rewardserve.export.throughput import CUDA, make_session, measure, synthetic_feeds

    _, manifest = exported("bert", "pairwise")
    feeds = synthetic_feeds(manifest.variant("fp16").inputs, 4, 32, 300, manifest.pad_token_id)
    fp32 = make_session(manifest.variant("fp32").path(manifest.directory), CUDA).run(["logits"], feeds)[0]
    fp16_session = make_session(manifest.variant("fp16").path(manifest.directory), CUDA)
    fp16 = fp16_session.run(["logits"], feeds)[0]
    np.testing.assert_allclose(fp16, fp32, atol=2e-2)
    result = measure(fp16_session, feeds, min_time_s=0.0)
    assert result["provider"] == CUDA and result["sequences_per_s"] > 0
