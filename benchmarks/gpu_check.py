"""GPU checks of an ONNX bundle: fp16 vs fp32 on the CUDA provider, and PyTorch eager speed.

Run where a GPU and onnxruntime-gpu are present (CI never has one):

    python -m rewardserve.benchmarks.gpu_check runs/hh-pairwise-onnx --texts ../shared/data/hh-rlhf-harmless/dev.jsonl

1. parity: every dev text scored with the fp32 and the fp16 variant on CUDA (the service's
   tokenizer and right padding, length-sorted batches); max/mean |Δlogit|, pair-ordering or
   argmax agreement, NaN/Inf;
2. speed: fp32 and fp16 with I/O binding on the same GPU, side by side (``export.throughput``),
   at several batch shapes; the ratio fp16 ÷ fp32;
3. PyTorch eager fp32 and fp16 of the same architecture (weights do not change speed), as the
   baseline users run today.
Writes one JSON file (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from rewardserve.export.texts import load_texts
from rewardserve.export.throughput import CUDA, make_session, measure, synthetic_feeds
from rewardserve.service.engine.encoding import TextEncoder, pad_batch

from rewardserve.bundle import RewardSpec
from rewardserve.enums import ModelKind, Truncation
from rewardserve.manifest import Manifest

SHAPES = ((1, 128), (8, 128), (32, 128), (64, 256))


def score_all(session, encoded, pad_id: int, batch_size: int = 32) -> np.ndarray:
    """Logits of every encoded text, in length-sorted batches, in input order."""
    order = np.argsort([e.num_tokens for e in encoded])
    names = {i.name for i in session.get_inputs()}
    out = None
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        feeds = {k: v for k, v in pad_batch([encoded[i] for i in idx], pad_id).items() if k in names}
        logits = session.run(["logits"], feeds)[0].astype(np.float32)
        if out is None:
            out = np.zeros((len(encoded), logits.shape[1]), np.float32)
        out[idx] = logits
    return out


def parity(bundle: Path, texts_file: Path | None, max_texts: int) -> dict:
    """fp16 against fp32, both on CUDA, over real texts."""
    spec, manifest = RewardSpec.load(bundle), Manifest.load(bundle)
    texts = load_texts(texts_file, spec, max_texts)
    enc = TextEncoder.from_file(bundle / "tokenizer.json", spec.max_length)
    encoded = enc.encode_batch(list(texts.texts), Truncation(spec.truncation_side.value))
    ref = score_all(make_session(manifest.variant("fp32").path(bundle), CUDA), encoded, manifest.pad_token_id)
    got = score_all(make_session(manifest.variant("fp16").path(bundle), CUDA), encoded, manifest.pad_token_id)
    d = np.abs(ref - got)
    r = spec.reward_index
    if spec.kind is ModelKind.pairwise and texts.paired:
        a = np.sign(ref[0::2, r] - ref[1::2, r]) == np.sign(got[0::2, r] - got[1::2, r])
        agreement, metric = float(a.mean()), "pair_ordering"
    else:
        agreement, metric = float((ref.argmax(1) == got.argmax(1)).mean()), "argmax"
    return {"texts": len(encoded), "max_abs_logit_diff": float(d.max()), "mean_abs_logit_diff": float(d.mean()),
            "agreement": agreement, "agreement_metric": metric,
            "nan_or_inf": int((~np.isfinite(got)).sum())}


def onnx_speed(bundle: Path, min_time_s: float) -> list[dict]:
    """fp32 and fp16 on CUDA with I/O binding, same feeds, several shapes."""
    manifest = Manifest.load(bundle)
    vocab = TextEncoder.from_file(bundle / "tokenizer.json", 8)._tok.get_vocab_size()
    rows = []
    sessions = {p: make_session(manifest.variant(p).path(bundle), CUDA) for p in ("fp32", "fp16")}
    for bs, seq in SHAPES:
        feeds = synthetic_feeds(manifest.variant("fp32").inputs, bs, seq, vocab, manifest.pad_token_id)
        res = {p: measure(s, feeds, min_time_s) for p, s in sessions.items()}
        rows.append({"batch": bs, "seq_len": seq, **{f"{p}_seq_per_s": r["sequences_per_s"] for p, r in res.items()},
                     "fp16_over_fp32": res["fp16"]["sequences_per_s"] / res["fp32"]["sequences_per_s"]})
    return rows


def torch_speed(bundle: Path, min_time_s: float) -> list[dict]:
    """PyTorch eager fp32 and fp16 of the same architecture on the GPU (random weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(bundle) if (bundle / "config.json").is_file() else _minilm_config()
    rows = []
    for dtype in (torch.float32, torch.float16):
        model = AutoModelForSequenceClassification.from_config(config).to("cuda", dtype).eval()
        for bs, seq in SHAPES:
            ids = torch.randint(1000, 20000, (bs, seq), device="cuda")
            mask = torch.ones_like(ids)
            with torch.inference_mode():
                for _ in range(3):
                    model(input_ids=ids, attention_mask=mask)
                torch.cuda.synchronize()
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < min_time_s:
                    model(input_ids=ids, attention_mask=mask)
                    n += 1
                torch.cuda.synchronize()
            rows.append({"dtype": str(dtype).split(".")[1], "batch": bs, "seq_len": seq,
                         "seq_per_s": n * bs / (time.perf_counter() - t0)})
    return rows


def _minilm_config():
    from transformers import BertConfig

    return BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                      intermediate_size=1536, num_labels=1)


def main(argv: list[str] | None = None) -> int:
    """Run every GPU check and write the JSON report."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("onnx_bundle", type=Path)
    p.add_argument("--texts", type=Path, default=None)
    p.add_argument("--max-texts", type=int, default=400)
    p.add_argument("--min-time-s", type=float, default=2.0)
    p.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    args = p.parse_args(argv)
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        print("gpu_check: onnxruntime has no CUDAExecutionProvider here (install onnxruntime-gpu)", file=sys.stderr)
        return 2
    report = {"onnxruntime": onnxruntime.__version__}
    report["parity_fp16_vs_fp32_cuda"] = parity(args.onnx_bundle, args.texts, args.max_texts)
    print(json.dumps(report["parity_fp16_vs_fp32_cuda"]), flush=True)
    report["onnx_cuda_speed"] = onnx_speed(args.onnx_bundle, args.min_time_s)
    for row in report["onnx_cuda_speed"]:
        print(json.dumps(row), flush=True)
    try:
        report["torch_eager_speed"] = torch_speed(args.onnx_bundle, args.min_time_s)
        for row in report["torch_eager_speed"]:
            print(json.dumps(row), flush=True)
    except Exception as e:  # torch is optional on a serving host
        report["torch_eager_speed"] = f"skipped: {e!r}"
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
