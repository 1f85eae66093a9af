"""The per-request PyTorch baseline: what users run today, in the style of OpenRLHF's ``serve_rm``.

A grpc.aio server implementing the same ``rewardserve.v1.RewardService.Score``, so the same
load generator drives it, with a transformers model loaded from the *model bundle* (the
ONNX bundle's source weights), sdpa attention, fp32 or bf16 (``serve_rm``'s default) on CPU,
fp32 or fp16 on CUDA. Like ``serve_rm``, it runs one request at a time (one worker thread): the
items of a request are padded into one forward pass, but requests are never batched together. Formatting and truncation follow ``reward.json`` as the service does.

    python -m rewardserve.benchmarks.torch_server --source-bundle runs/hh-pairwise --port 50061 --threads 2
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from rewardserve.service.domain import ItemScore, ScoreResult
from rewardserve.service.edge import convert
from rewardserve.service.engine.postprocess import rewards
from rewardserve.service.errors import InvalidArgument

from rewardserve.activations import probabilities
from rewardserve.bundle import RewardSpec
from rewardserve.formatting import FormatError, format_item
from rewardserve.v1 import reward_pb2_grpc

logger = logging.getLogger(__name__)

MAX_ITEMS_PER_REQUEST = 1024
SERVICE_NAME = "rewardserve.v1.RewardService"


class TorchScorer:
    """A transformers sequence classifier scoring one padded batch at a time (blocking).

    Example::

        scorer = TorchScorer(Path("runs/hh-pairwise"), device="cpu", dtype="fp32", threads=2)
        logits, num_tokens = scorer.forward(["\\n\\nHuman: hi\\n\\nAssistant: hello"])
    """

    def __init__(self, source_bundle: Path, device: str = "cpu", dtype: str = "fp32", threads: int = 0):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if threads > 0:
            torch.set_num_threads(threads)
        self.spec = RewardSpec.load(source_bundle)
        self.tokenizer = AutoTokenizer.from_pretrained(source_bundle, use_fast=True)
        self.tokenizer.truncation_side = self.spec.truncation_side.value
        torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
        # sdpa attention, as OpenRLHF's serve_rm runs on CPU (its default flash-attn needs CUDA).
        self.model = AutoModelForSequenceClassification.from_pretrained(source_bundle, torch_dtype=torch_dtype,
                                                                        attn_implementation="sdpa")
        self.model.to(device).eval()
        self.device = device
        self._torch = torch
        logger.info("torch baseline: %s on %s (%s, %d threads)", source_bundle, device, dtype, torch.get_num_threads())

    def forward(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Float32 logits ``[len(texts), num_labels]`` and real tokens per text."""
        enc = self.tokenizer(texts, truncation=True, max_length=self.spec.max_length, padding=True,
                             return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with self._torch.inference_mode():
            logits = self.model(**enc).logits.float().cpu().numpy()
        return logits, enc["attention_mask"].sum(dim=1).cpu().numpy()


class TorchRewardServicer(reward_pb2_grpc.RewardServiceServicer):
    """``RewardService.Score`` over a :class:`TorchScorer`, one request at a time."""

    def __init__(self, scorer: TorchScorer):
        self.scorer = scorer
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="torch")  # serve_rm: no cross-request batching

    async def Score(self, request, context):
        try:
            req = convert.score_request_from_pb(request, MAX_ITEMS_PER_REQUEST)
            texts = [format_item(self.scorer.spec, item) for item in req.items]
        except (InvalidArgument, FormatError) as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        logits, num_tokens = await asyncio.get_running_loop().run_in_executor(self._worker, self.scorer.forward, texts)
        spec = self.scorer.spec
        probs, rew = probabilities(logits), rewards(logits, spec, req.options.normalize)
        scores = tuple(
            ItemScore(logits=tuple(float(x) for x in logits[i]), probabilities=tuple(float(x) for x in probs[i]),
                      reward=float(rew[i]), num_tokens=int(num_tokens[i]),
                      truncated=bool(num_tokens[i] >= spec.max_length))  # approximate: one pass only
            for i in range(len(texts))
        )
        return convert.score_result_to_pb(ScoreResult(scores, "torch", req.request_id))


async def serve(scorer: TorchScorer, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    server = grpc.aio.server()
    reward_pb2_grpc.add_RewardServiceServicer_to_server(TorchRewardServicer(scorer), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if not server.add_insecure_port(f"{host}:{port}"):
        raise OSError(f"cannot listen on {host}:{port}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    logger.info("torch baseline listening on %s:%d", host, port)
    await stop.wait()
    await server.stop(1.0)


def main(argv: list[str] | None = None) -> int:
    """Load the model, then serve."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source-bundle", type=Path, required=True, help="model bundle (HF weights + reward.json)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp32",
                   help="bf16: as serve_rm runs by default (fast on CPUs with AVX-512 BF16 / AMX)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scorer = TorchScorer(args.source_bundle, args.device, args.dtype, args.threads)
    asyncio.run(serve(scorer, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
