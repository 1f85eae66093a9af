"""The per-request PyTorch baseline scores like rewardserve (same formatting, truncation, weights)."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from rewardserve.benchmarks.server_proc import ServerProcess

from rewardserve.v1 import reward_pb2 as pb
from rewardserve.v1 import reward_pb2_grpc

pytestmark = pytest.mark.e2e


def _score(target: str, texts: list[str]) -> pb.ScoreResponse:
    with grpc.insecure_channel(target) as channel:
        return reward_pb2_grpc.RewardServiceStub(channel).Score(
            pb.ScoreRequest(items=[pb.Item(text=t) for t in texts]), timeout=30)


def test_torch_baseline_returns_rewardserve_rewards(tiny, workload, tmp_path):
    texts = list(workload.texts[:12])  # real dialogues, several longer than max_length (left truncation)
    with ServerProcess.torch(tiny["source"], threads=1, log_dir=tmp_path).start(120) as torch_server:
        torch_batch = _score(torch_server.target, texts)
        torch_one = [_score(torch_server.target, [t]).scores[0] for t in texts[:3]]
    with ServerProcess.rewardserve(tiny["onnx"], "fp32", 1, 16, 1.0, tmp_path).start(120) as rs:
        served = _score(rs.target, texts)
    assert len(torch_batch.scores) == len(served.scores) == len(texts)
    np.testing.assert_allclose([s.reward for s in torch_batch.scores], [s.reward for s in served.scores], atol=1e-4)
    np.testing.assert_allclose([s.reward for s in torch_one], [s.reward for s in served.scores[:3]], atol=1e-4)
    assert [s.num_tokens for s in torch_batch.scores] == [s.num_tokens for s in served.scores]
