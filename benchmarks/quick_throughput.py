"""Quick throughput: the server under 64 concurrent single-item clients vs raw ONNX Runtime.

Both sides score the same texts in the same run, on the same model variant and thread
settings. The baseline is the best case for ONNX Runtime: every text known up front,
tokenized in one call, sorted by length and cut into token-budget batches. The server
side pays for gRPC, per-request tokenization and dynamic batching. The ratio
server / raw says how much of the hardware the service delivers.

    python -m rewardserve.benchmarks.quick_throughput --model models/hh-onnx --items 2000
    python -m rewardserve.benchmarks.quick_throughput --model a=DIR --model b=DIR --precision int8

Writes ``runs/quick_throughput.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TEXTS = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless" / "dev.jsonl"


def load_texts(path: Path | None, n: int) -> list[str]:
    """Texts from JSONL (text | chosen/rejected | prompt+response), else synthetic mixed lengths."""
    texts: list[str] = []
    if path is not None and path.is_file():
        for line in path.read_text().splitlines():
            obj = json.loads(line)
            texts += [obj[k] for k in ("text", "chosen", "rejected") if isinstance(obj.get(k), str)]
            if "response" in obj:
                texts.append(obj.get("prompt", "") + obj["response"])
    if not texts:
        words = ["the", "reward", "model", "reads", "a", "dialogue", "and", "scores", "how", "harmless", "the", "last", "answer", "is"]
        texts = [" ".join(words[i % len(words)] for i in range(5 + (17 * j) % 300)) for j in range(n)]
    return list(itertools.islice(itertools.cycle(texts), n))


def raw_onnxruntime(source, config, texts: list[str]) -> dict:
    """Best-case ONNX Runtime: one tokenizer call, length-sorted token-budget batches."""
    from rewardserve.service.engine.models import ScoringModel
    from rewardserve.service.metrics import ServiceMetrics

    model = ScoringModel.load(source, config, ServiceMetrics(), prep_pool=None)
    model.warm_up()
    start = time.perf_counter()
    encoded = model.encoder.encode_batch(texts, model.spec.truncation_side)
    encoded.sort(key=lambda e: e.num_tokens)
    batches, current = [], []
    for e in encoded:
        if current and (len(current) >= config.max_batch_items
                        or (len(current) + 1) * e.num_tokens > config.max_batch_tokens):
            batches.append(current)
            current = []
        current.append(e)
    batches.append(current)
    for b in batches:
        model.run_batch(b)
    seconds = time.perf_counter() - start
    return {"items_per_s": len(texts) / seconds, "seconds": seconds, "batches": len(batches),
            "variant": model.variant.file, "provider": model.backend.provider,
            "mean_tokens": sum(e.num_tokens for e in encoded) / len(encoded)}


async def server_clients(target: str, model: str, texts: list[str], clients: int) -> dict:
    """``clients`` concurrent clients, each sending one item per request until texts run out."""
    from rewardserve.service.client import AsyncRewardClient

    queue = iter(enumerate(texts))
    latencies: list[float] = []

    async def one_client():
        async with AsyncRewardClient(target, timeout_s=120) as client:
            await client.score(["warm up"], model=model)
            for _, text in queue:
                t0 = time.perf_counter()
                await client.score([text], model=model)
                latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    seconds = time.perf_counter() - start
    latencies.sort()
    return {"items_per_s": len(texts) / seconds, "seconds": seconds, "clients": clients,
            "p50_ms": 1000 * latencies[len(latencies) // 2], "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)]}


def start_server(models: list[str], args, port: int) -> subprocess.Popen:
    """``rewardserve serve`` in its own process (so client load does not share its GIL)."""
    cmd = [sys.executable, "-m", "rewardserve.cli", "serve", "--port", str(port), "--metrics-port", "off",
           "--max-batch-items", str(args.max_batch_items), "--max-batch-tokens", str(args.max_batch_tokens),
           "--max-wait-ms", str(args.max_wait_ms), "--precision", args.precision, "--provider", args.provider,
           "--intra-op-threads", str(args.intra_op_threads), "--inference-workers", str(args.inference_workers)]
    for m in models:
        cmd += ["--model", m]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_serving(target: str, proc: subprocess.Popen, timeout_s: float = 600) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stderr.read()[-2000:]}")
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise TimeoutError("server did not become SERVING")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a table and the server / raw ratio."""
    from rewardserve.service.config import ModelSource, ServiceConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", required=True, help="ONNX bundle (NAME=DIR or DIR); repeatable")
    p.add_argument("--texts", type=Path, default=DEFAULT_TEXTS, help="JSONL of texts (default: HH dev)")
    p.add_argument("--items", type=int, default=1000, help="texts scored per model and side")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--precision", default="fp32", help="auto|fp32|fp16|int8 (same on both sides)")
    p.add_argument("--provider", default="auto")
    p.add_argument("--max-batch-items", type=int, default=64)
    p.add_argument("--max-batch-tokens", type=int, default=16384)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--intra-op-threads", type=int, default=0)
    p.add_argument("--inference-workers", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "quick_throughput.json")
    args = p.parse_args(argv)

    sources = [ModelSource.parse(m) for m in args.model]
    config = ServiceConfig(models=tuple(sources), precision=args.precision, provider=args.provider,
                           max_batch_items=args.max_batch_items, max_batch_tokens=args.max_batch_tokens,
                           intra_op_threads=args.intra_op_threads)
    texts = load_texts(args.texts, args.items)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = {"config": {k: str(v) for k, v in vars(args).items()}, "models": {}}
    proc = start_server([f"{m.name}={m.path}" for m in sources], args, port)
    try:
        wait_serving(f"127.0.0.1:{port}", proc)
        for source in sources:
            raw = raw_onnxruntime(source, config, texts)
            served = asyncio.run(server_clients(f"127.0.0.1:{port}", source.name, texts, args.clients))
            ratio = served["items_per_s"] / raw["items_per_s"]
            results["models"][source.name] = {"raw_onnxruntime": raw, "server": served, "ratio": ratio}
            print(f"{source.name:>12}: raw ORT {raw['items_per_s']:8.1f} items/s | server ({args.clients} clients) "
                  f"{served['items_per_s']:8.1f} items/s, p50 {served['p50_ms']:.1f} ms, p99 {served['p99_ms']:.1f} ms"
                  f" | ratio {ratio:.2f}  [{raw['variant']} on {raw['provider']}, {raw['mean_tokens']:.0f} tok/item]")
    finally:
        proc.terminate()
        proc.wait(60)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
