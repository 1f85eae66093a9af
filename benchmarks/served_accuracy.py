"""Accuracy through the server: each precision served over gRPC, next to PyTorch on the same data.

    python -m rewardserve.benchmarks.served_accuracy runs/hh-pairwise-onnx ../shared/data/hh-rlhf-harmless/dev.jsonl \\
        --pytorch-bundle runs/hh-pairwise --precisions auto fp32 int8

``auto`` is what ``serve`` picks by default (backend and precision for this host); each row is
named by the combination the server reports (``GetModel``'s execution provider, e.g.
``OpenVINO:CPU:bf16``). ``Δ items`` is the difference from PyTorch in pairs (or rows) scored
right: issue 13's bar is at most 1 of the 200 HH dev pairs and 10 of the 2,000 toxicity rows.

Starts a real server on a free loopback port per precision, scores every dev text through the
async client, and computes the metrics of ``rewardserve eval`` (pairwise accuracy or classifier
accuracy/macro-F1). The PyTorch figures are computed live from ``--pytorch-bundle`` (else read
from the ONNX bundle's reward.json, where training recorded them). Prints a table; ``--out``
writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from rewardserve.service.client import AsyncRewardClient
from rewardserve.service.config import ModelSource, ServiceConfig
from rewardserve.service.edge.server import RewardServer
from rewardserve.training.data import TextFormatter, load_classification, load_preferences
from rewardserve.training.evaluate import classifier_metrics, pairwise_metrics

from rewardserve.bundle import RewardSpec
from rewardserve.enums import ModelKind

CHUNK = 64


def load_eval_texts(spec: RewardSpec, data: str, bundle: Path) -> tuple[list[str], Any]:
    """Texts to score and what the metrics need (pair indices or labels)."""
    if spec.kind is ModelKind.pairwise:
        groups, _ = load_preferences(data, TextFormatter(spec.prompt_template, spec.chat_template))
        texts, pairs = [], []
        for g in groups:
            base = len(texts)
            texts.extend(g.texts)
            pairs.extend((base + i, base + j) for i, j in g.pairs)
        return texts, np.array(pairs)
    recipe = json.loads((bundle / "training_config.json").read_text()) if (bundle / "training_config.json").is_file() else {}
    kw = {k: recipe[k] for k in ("text_column", "label_column", "label_map") if recipe.get(k)}
    rows, _, _ = load_classification(data, labels=spec.labels, **kw)
    return [r.text for r in rows], np.array([r.label for r in rows])


def metrics(spec: RewardSpec, logits: np.ndarray, target: Any) -> dict[str, Any]:
    """The eval metrics of one model's logits."""
    if spec.kind is ModelKind.pairwise:
        r = logits[:, spec.reward_index]
        return pairwise_metrics(r[target[:, 0]], r[target[:, 1]])
    return classifier_metrics(logits, target, spec.labels, spec.reward_label)


async def served_logits(onnx_bundle: Path, precision: str, texts: list[str]) -> tuple[np.ndarray, str]:
    """Score every text through a real server serving ``precision``; also return what it served."""
    config = ServiceConfig(models=(ModelSource("m", str(onnx_bundle)),), port=0, metrics_port=None,
                           precision=precision)
    server = RewardServer(config)
    await server.start()
    try:
        await server.wait_ready()
        async with AsyncRewardClient(f"127.0.0.1:{server.port}", timeout_s=600) as client:
            chunks = [texts[i : i + CHUNK] for i in range(0, len(texts), CHUNK)]
            results = await asyncio.gather(*(client.score(c) for c in chunks))
            served = (await client.get_model()).execution_provider
        return np.array([s.logits for r in results for s in r.scores], dtype=np.float32), served
    finally:
        await server.stop(1.0)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("onnx_bundle", type=Path)
    p.add_argument("data")
    p.add_argument("--pytorch-bundle", type=Path, help="model bundle to score with PyTorch in the same run")
    p.add_argument("--precisions", nargs="+", default=["auto", "fp32", "int8"],
                   help="what to serve: auto (the server's choice for this host), fp32, fp16, int8, bf16")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)

    spec = RewardSpec.load(args.onnx_bundle)
    source = args.pytorch_bundle or args.onnx_bundle
    texts, target = load_eval_texts(spec, args.data, source)
    key = "accuracy"
    rows: dict[str, dict[str, Any]] = {}
    if args.pytorch_bundle:
        from rewardserve.training.evaluate import evaluate_bundle

        rows["pytorch fp32"] = evaluate_bundle(args.pytorch_bundle, args.data)
    else:
        rows["pytorch fp32 (from training)"] = spec.metrics.get("eval", {})
    for precision in args.precisions:
        logits, served = asyncio.run(served_logits(args.onnx_bundle, precision, texts))
        if len(logits) != len(texts):
            raise RuntimeError(f"{precision}: {len(logits)} results for {len(texts)} texts")
        rows[f"server {precision} ({served})"] = metrics(spec, logits, target)
    ref = next(iter(rows.values())).get(key)
    count = len(target)  # pairs or rows
    print(f"{'system':44s} {'accuracy':>9s} {'Δ points':>9s} {'Δ items':>8s}"
          + ("  macro_f1" if spec.kind is ModelKind.classifier else ""))
    for name, m in rows.items():
        delta = "" if ref is None else f"{100 * (m[key] - ref):+9.2f}"
        items = "" if ref is None else f"{round((m[key] - ref) * count):+8d}"
        extra = f"  {m['macro_f1']:.4f}" if "macro_f1" in m else ""
        print(f"{name:44s} {m[key]:9.4f} {delta:>9s} {items:>8s}{extra}")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
