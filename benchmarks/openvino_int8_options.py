"""Which OpenVINO int8 keeps a bundle's scores: NNCF's static quantization against weight-only int8.

    python -m rewardserve.benchmarks.openvino_int8_options --bundle ~/.cache/rewardserve/quick/hh/onnx \\
        --data ../shared/data/hh-rlhf-harmless/dev.jsonl --calibration ../shared/data/hh-rlhf-harmless/train.jsonl

Export serves OpenVINO int8 (``export/openvino_int8.py``) only if it passes the int8 gates; NNCF's
static quantization (``nncf.quantize``, transformer preset) failed them on both quick bundles.
This compares, on the same texts through the server's encoder and one OpenVINO thread:

- ``openvino bf16``: ``model_fp32.onnx`` at bf16 inference precision (what ``auto`` serves on this
  CPU; f32 on a CPU without native bf16, the precision of the int8 models' other ops too);
- ``static``: ``nncf.quantize`` as export runs it (int8 weights and activations);
- ``static-no-smoothquant``: the same with SmoothQuant off;
- ``weights``: ``nncf.compress_weights`` (int8 weights, per output channel, asymmetric) with the
  CPU plugin's dynamic int8 quantization of activations (``DYNAMIC_QUANTIZATION_GROUP_SIZE``);
- ``weights-no-dynamic``: the same weights, activations left in bf16.

Measured (``results/openvino-int8-options-{hh,toxicity}``, benchmarks/README.md, "OpenVINO int8
options"): static int8 ran 1.5x bf16 on the Zen 4 VM but failed the gates; weight-only int8 with
dynamic activations ran 1.10-1.14x and kept them, so export makes that one by default.

Each against ``model_fp32.onnx`` at fp32: max and mean |Δreward|, agreement (pairs ordered alike,
or the same label), the task metric, and items/s on length-sorted batches of ``--batch``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
from rewardserve.benchmarks.served_accuracy import load_eval_texts, metrics
from rewardserve.service.engine.encoding import TextEncoder, pad_batch

from rewardserve.bundle import RewardSpec
from rewardserve.enums import ModelKind
from rewardserve.manifest import Manifest


def batches(encoder: TextEncoder, spec: RewardSpec, pad_id: int, texts: list[str], size: int):
    """Length-sorted padded batches of ``texts`` and the order they put the texts in."""
    encoded = encoder.encode_batch(texts, spec.truncation_side)
    order = sorted(range(len(encoded)), key=lambda i: encoded[i].num_tokens)
    return [pad_batch([encoded[i] for i in order[s : s + size]], pad_id) for s in range(0, len(order), size)], order


def compile_model(model, hint: str, dynamic_group: int | None = None):
    import openvino as ov

    config = {"INFERENCE_PRECISION_HINT": hint, "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": "1",
              "ENABLE_CPU_PINNING": "NO"}
    if dynamic_group is not None:
        config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = str(dynamic_group)
    return ov.Core().compile_model(model, "CPU", config)


def run(compiled, feeds: list[dict[str, np.ndarray]], order: list[int]) -> tuple[np.ndarray, float]:
    """Logits in the texts' order and items/s of the second of two passes."""
    names = {i.get_any_name() for i in compiled.inputs}
    request = compiled.create_infer_request()
    for _ in range(2):
        start, out = time.perf_counter(), []
        for f in feeds:
            out.append(np.array(request.infer({k: v for k, v in f.items() if k in names})[compiled.outputs[0]]))
        seconds = time.perf_counter() - start
    logits = np.empty((len(order), out[0].shape[-1]), np.float32)
    logits[order] = np.concatenate(out).reshape(len(order), -1)
    return logits, len(order) / seconds


def main(argv: list[str] | None = None) -> int:
    import nncf
    import openvino as ov
    from rewardserve.service.backends.openvino import DYNAMIC_QUANTIZATION_GROUP, has_native_bf16

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, required=True, help="ONNX bundle with model_fp32(_unoptimized).onnx")
    p.add_argument("--data", required=True, help="eval texts (the bundle's dev file)")
    p.add_argument("--calibration", required=True, help="calibration texts (its train file)")
    p.add_argument("--source-bundle", type=Path, help="the model bundle (its training_config.json names a CSV's "
                   "columns; default: --bundle)")
    p.add_argument("--calibration-texts", type=int, default=128)
    p.add_argument("--max-texts", type=int, default=400)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--out", type=Path, help="write the table and JSON here")
    args = p.parse_args(argv)
    nncf.set_log_level(logging.WARNING)
    spec, manifest = RewardSpec.load(args.bundle), Manifest.load(args.bundle)
    encoder = TextEncoder.from_file(args.bundle / "tokenizer.json", spec.max_length)
    recipe = args.source_bundle or args.bundle
    texts, target = load_eval_texts(spec, args.data, recipe)
    if spec.kind is ModelKind.pairwise:  # whole pairs within --max-texts
        target = target[(target < args.max_texts).all(axis=1)]
    else:
        target = target[: args.max_texts]
    texts = texts[: args.max_texts]
    feeds, order = batches(encoder, spec, manifest.pad_token_id, texts, args.batch)
    calib_texts, _ = load_eval_texts(spec, args.calibration, recipe)
    calib, _ = batches(encoder, spec, manifest.pad_token_id, calib_texts[: args.calibration_texts], 1)

    source = ov.Core().read_model(str(args.bundle / "model_fp32_unoptimized.onnx"))
    names = {i.get_any_name() for i in source.inputs}
    dataset = nncf.Dataset([{k: v for k, v in f.items() if k in names} for f in calib])

    def static(**kw):
        with contextlib.redirect_stdout(sys.stderr):
            return nncf.quantize(source.clone(), dataset, model_type=nncf.ModelType.TRANSFORMER,
                                 subset_size=len(calib), **kw)

    hint = "bf16" if has_native_bf16() else "f32"  # what the int8 models' other ops compute in, too
    weights = nncf.compress_weights(source.clone(), mode=nncf.CompressWeightsMode.INT8_ASYM)
    fp32_file = str(manifest.variant("fp32").path(args.bundle))
    candidates = {
        f"openvino {hint}": lambda: compile_model(fp32_file, hint),
        "static": lambda: compile_model(static(), hint),
        "static-no-smoothquant": lambda: compile_model(static(advanced_parameters=nncf.AdvancedQuantizationParameters(
            smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=-1.0))), hint),
        "weights": lambda: compile_model(weights, hint, DYNAMIC_QUANTIZATION_GROUP),
        "weights-no-dynamic": lambda: compile_model(weights, hint, 0),
    }
    reference, fp32_speed = run(compile_model(fp32_file, "f32"), feeds, order)
    rows = [{"model": "openvino fp32 (the reference)", "items_per_s": fp32_speed, **metrics(spec, reference, target)}]
    ref_reward = reference[:, spec.reward_index]
    for name, build in candidates.items():
        logits, speed = run(build(), feeds, order)
        reward = logits[:, spec.reward_index]
        if spec.kind is ModelKind.pairwise:
            a, b = target[:, 0], target[:, 1]
            agreement = float(np.mean((reward[a] > reward[b]) == (ref_reward[a] > ref_reward[b])))
        else:
            agreement = float(np.mean(logits.argmax(1) == reference.argmax(1)))
        rows.append({"model": name, "items_per_s": speed, "max_abs_diff": float(np.abs(reward - ref_reward).max()),
                     "mean_abs_diff": float(np.abs(reward - ref_reward).mean()), "agreement": agreement,
                     **metrics(spec, logits, target)})
    metric = "accuracy"
    lines = [f"{args.bundle}: {len(texts)} texts of {args.data}, batches of {args.batch}, 1 OpenVINO thread",
             "", f"| model | items/s | x {hint} | max abs Δreward | mean abs Δreward | agreement with fp32 | {metric} |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    base = rows[1]["items_per_s"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['items_per_s']:.1f} | {r['items_per_s'] / base:.2f} "
                     f"| {r.get('max_abs_diff', 0.0):.4f} | {r.get('mean_abs_diff', 0.0):.4f} "
                     f"| {r.get('agreement', 1.0):.4f} | {r.get(metric, float('nan')):.4f} |")
    print("\n".join(lines))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "int8_options.md").write_text("\n".join(lines) + "\n")
        (args.out / "int8_options.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
