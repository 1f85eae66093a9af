"""Offline limits of runtimes other than ONNX Runtime: OpenVINO on the exported ONNX, PyTorch on the source.

Every limit runs the same pre-tokenized, length-sorted items as the ONNX Runtime limit
(:mod:`benchmarks.limit`: the server's own encoder and padding) at each batch size, timed by the
same :func:`benchmarks.limit.sweep`, and keeps the best; none times tokenizing. Each runs in its own
subprocess (``python -m`` this module), so torch's OpenMP pool and OpenVINO's threads never live in the bench process.

- ``openvino``: the ``openvino`` package reading ``model_fp32.onnx`` directly, CPU plugin,
  ``INFERENCE_PRECISION_HINT`` f32 or bf16 (bf16 only where the CPU offers it: OpenVINO would
  otherwise run f32 and call it bf16); one infer request per worker thread, like the server's
  inference workers; one worker per core x 1 thread and 1 worker x every core are both tried.
- ``openvino int8``: the bundle's NNCF int8 IR (``model_openvino_int8.xml``; packed:
  ``model_openvino_int8_packed.xml``), its other ops at bf16 where the CPU offers it, as the
  server runs it; measured only where its combination passed parity (an int8 that fails its
  gates is no speed a server may serve), else listed with the failure.
- ``openvino-packed``: the same on the bundle's packed graph (``model_fp32_packed.onnx``, BERT
  classifiers): each sorted batch packed into rows as the server's backend packs it.
- ``torch``: ``AutoModelForSequenceClassification`` from the model bundle, ``attn_implementation
  = "sdpa"``, fp32 or bf16 on CPU (fp32/fp16 on CUDA), one forward pass per batch, torch's
  threads = the cores; ``OMP_WAIT_POLICY=PASSIVE`` as for the per-request baseline.

    python -m rewardserve.benchmarks.backend_limits openvino bf16 --bundle B --data D --max-texts 400 --seed 0
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rewardserve.benchmarks.hardware import cpu_bf16
from rewardserve.benchmarks.limit import sweep
from rewardserve.benchmarks.workload import Workload
from rewardserve.export.openvino_int8 import OPENVINO_INT8_FILE, OPENVINO_INT8_PACKED_FILE
from rewardserve.export.packed import PACKED_FILE
from rewardserve.service.backends.choice import load_reference
from rewardserve.service.backends.packing import pack, unpack
from rewardserve.service.engine.encoding import pad_batch

from rewardserve.manifest import Manifest, Runtime, ServedPrecision

logger = logging.getLogger(__name__)


def _type_name(t) -> str:
    """'f32' / 'bf16' from an OpenVINO element type (its str() is a repr)."""
    return t.to_string() if hasattr(t, "to_string") else str(t)


def openvino_limit(bundle: Path, precision: str, encoded: Sequence, batch_sizes: Sequence[int],
                   min_time_s: float, packed: bool = False) -> dict:
    """OpenVINO CPU on ``model_fp32.onnx`` (or the packed graph) at ``precision`` (fp32 | bf16), or its int8 IR
    (``int8``: the other ops at bf16 where the CPU has it), the better of two threadings."""
    import openvino as ov
    from rewardserve.service.backends.openvino import DYNAMIC_QUANTIZATION_GROUP

    # Compiled here rather than through the server's OpenVinoBackend, which turns CPU pinning off to share the
    # cores with its event loop: a limit keeps OpenVINO's own defaults.
    manifest = Manifest.load(bundle)
    core = ov.Core()
    if precision == "int8":
        path = bundle / (OPENVINO_INT8_PACKED_FILE if packed else OPENVINO_INT8_FILE)
    else:
        path = bundle / PACKED_FILE if packed else manifest.variant("fp32").path(bundle)
    model = core.read_model(str(path))
    hint = "bf16" if precision == "bf16" or (precision == "int8" and cpu_bf16()) else "f32"
    shape = pack if packed else (lambda feeds: (feeds, None))
    names = [i.get_any_name() for i in model.inputs]
    ordered = sorted(encoded, key=lambda e: e.num_tokens)
    cores = os.cpu_count() or 1
    reference = load_reference(bundle, manifest)
    key = f"openvino:{precision}:cpu" + (":packed" if packed else "")
    tolerance = next((c.reference_tolerance for c in manifest.combinations if c.key == key), None)
    results, off = [], []
    for workers, threads in dict.fromkeys([(cores, 1), (1, cores)]):
        config = {"INFERENCE_PRECISION_HINT": hint, "NUM_STREAMS": str(workers),
                  "INFERENCE_NUM_THREADS": str(workers * threads)}
        if precision == "int8":  # as the server's backend runs an int8 IR
            config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = str(DYNAMIC_QUANTIZATION_GROUP)
        compiled = core.compile_model(model, "CPU", config)
        requests = [compiled.create_infer_request() for _ in range(workers)]
        free = list(requests)

        def logits(feeds, free=free):
            req = free.pop()  # list.pop/append are atomic: one request per worker thread at a time
            try:
                packed_feeds, where = shape(feeds)
                req.infer({k: v for k, v in packed_feeds.items() if k in names})
                out = req.get_output_tensor(0).data
                return out if where is None else unpack(out, where)
            finally:
                free.append(req)

        if reference is not None and tolerance is not None:  # a threading that computes other logits is no limit
            diff = float(np.abs(logits({k: v for k, v in reference.items() if k != "logits"}).reshape(
                reference["logits"].shape) - reference["logits"]).max())
            if diff > tolerance:
                logger.warning("%s (%d x %d): off the reference logits by %.3g (> %.3g): not timed",
                               key, workers, threads, diff, tolerance)
                off.append(f"{workers} x {threads}: off the reference logits by {diff:.3g} (> {tolerance:.3g})")
                continue

        r = sweep(lambda batch, logits=logits: logits(pad_batch(batch, manifest.pad_token_id)), ordered, batch_sizes,
                  workers, min_time_s, f"openvino{'-packed' if packed else ''} {precision} ({workers} x {threads})")
        r.update(workers=workers, threads=threads,
                 precision_used=_type_name(compiled.get_property("INFERENCE_PRECISION_HINT")))
        results.append(r)
    if not results:
        raise ValueError(f"{key}: every threading is off the reference logits ({'; '.join(off)})")
    best = max(results, key=lambda r: r["items_per_s"])
    best["alternatives"] = [{k: r[k] for k in ("workers", "threads", "best_batch_size", "items_per_s")} for r in results]
    best["not_timed"] = off
    best["version"] = ov.get_version()
    return best


def torch_limit(source_bundle: Path, precision: str, encoded: Sequence, batch_sizes: Sequence[int],
                min_time_s: float, device: str, pad_id: int) -> dict:
    """PyTorch (transformers, sdpa) batched forward passes at ``precision`` (fp32 | bf16 | fp16)."""
    import inspect

    import torch
    from transformers import AutoModelForSequenceClassification

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    if device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    model = AutoModelForSequenceClassification.from_pretrained(source_bundle, torch_dtype=dtype,
                                                               attn_implementation="sdpa").to(device).eval()
    accepted = set(inspect.signature(model.forward).parameters) & {"input_ids", "attention_mask", "token_type_ids"}

    def run(batch):
        feed = {k: torch.from_numpy(v).to(device) for k, v in pad_batch(batch, pad_id).items() if k in accepted}
        with torch.inference_mode():
            out = model(**feed).logits.float()
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    r = sweep(run, sorted(encoded, key=lambda e: e.num_tokens), batch_sizes, 1, min_time_s, f"torch {precision}")
    r.update(workers=1, threads=torch.get_num_threads(), version=torch.__version__, attention="sdpa")
    return r


def candidates(device: str, have_source: bool, bundle: Path | None = None) -> list[tuple[str, str, str]]:
    """(backend, precision, reason to skip or '') of every non-ORT limit this host could run."""
    out = []
    if device == "cpu":
        try:
            import openvino  # noqa: F401
            ov_missing = ""
        except ImportError:
            ov_missing = "openvino not installed (pip install openvino)"
        out.append(("openvino", "fp32", ov_missing))
        out.append(("openvino", "bf16", ov_missing or ("" if cpu_bf16() else "CPU has no AVX-512 BF16 / AMX")))
        if bundle is not None and (bundle / PACKED_FILE).is_file():  # a BERT classifier's packed graph
            out += [("openvino-packed", p, why) for b, p, why in out[-2:]]
        if bundle is not None:
            out.append(("openvino", "int8", ov_missing or _int8_unservable(bundle, packed=False)))
            if (bundle / PACKED_FILE).is_file():
                out.append(("openvino-packed", "int8", ov_missing or _int8_unservable(bundle, packed=True)))
    no_source = "" if have_source else "no --source-bundle (the model bundle's weights)"
    for precision in ("fp32", "bf16") if device == "cpu" else ("fp32", "fp16"):
        skip = no_source or ("CPU has no AVX-512 BF16 / AMX" if precision == "bf16" and not cpu_bf16() else "")
        out.append(("torch", precision, skip))
    return out


def _int8_unservable(bundle: Path, packed: bool) -> str:
    """Why the bundle's OpenVINO int8 IR (of the packed graph, or not) is not measured ('' when it passed parity)."""
    name = OPENVINO_INT8_PACKED_FILE if packed else OPENVINO_INT8_FILE
    if not (bundle / name).is_file():
        return f"no {name} in the bundle (export with nncf installed)"
    ov_int8 = [c for c in Manifest.load(bundle).combinations
               if c.runtime is Runtime.openvino and c.precision is ServedPrecision.int8 and c.packed == packed]
    if ov_int8 and ov_int8[0].passed:
        return ""
    return "failed parity: " + (ov_int8[0].failure if ov_int8 else "not recorded in the manifest")


def main(argv: list[str] | None = None) -> int:
    """Measure one (backend, precision) limit; print its JSON as the last line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("backend", choices=["openvino", "openvino-packed", "torch"])
    p.add_argument("precision", choices=["fp32", "bf16", "fp16", "int8"])
    p.add_argument("--bundle", type=Path, required=True, help="ONNX bundle (tokenizer, model_fp32.onnx)")
    p.add_argument("--source-bundle", type=Path, help="model bundle (torch)")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--max-texts", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-sizes", default="1,8,16,32,64")
    p.add_argument("--min-time-s", type=float, default=2.0)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    encoded = Workload.load(args.bundle, args.data, args.max_texts, args.seed).encoded
    sizes = [int(s) for s in args.batch_sizes.split(",") if s.strip()]
    if args.backend.startswith("openvino"):
        r = openvino_limit(args.bundle, args.precision, encoded, sizes, args.min_time_s,
                           packed=args.backend == "openvino-packed")
    else:
        r = torch_limit(args.source_bundle, args.precision, encoded, sizes, args.min_time_s, args.device,
                        Manifest.load(args.bundle).pad_token_id)
    tokens = sum(e.num_tokens for e in encoded)
    r.update(backend=args.backend, precision=args.precision, device=args.device, n_items=len(encoded),
             mean_tokens=tokens / len(encoded))
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
