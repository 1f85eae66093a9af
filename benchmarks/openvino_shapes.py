"""Two OpenVINO costs a server pays and a length-sorted offline limit does not, measured on one bundle.

    python -m rewardserve.benchmarks.openvino_shapes --bundle ~/.cache/rewardserve/quick/toxicity/onnx

- **New shapes**: the CPU plugin prepares each new (batch, length) shape the first time it runs.
  272 mixed shapes (batch 1-16, length 10-58) are run once in a shuffled order, then again; the
  difference is that first-time cost. A server meets new shapes with every new batch size and
  longest length; a sorted offline sweep repeats a few.
- **Spinning between calls**: CPU time per inference against its wall time, with 0, 2 and 10 ms
  idle between calls. Equal means OpenVINO's threads do not burn CPU waiting for the next call.

One stream, one thread, ``model_fp32.onnx`` at ``--precision`` (bf16 needs AVX-512 BF16 / AMX).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

from rewardserve.manifest import Manifest


def feed(names: list[str], rows: int, length: int) -> dict[str, np.ndarray]:
    """A batch of ``rows`` x ``length`` token ids with every input the graph takes."""
    ids = np.full((rows, length), 1000, np.int64)
    inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids),
              "position_ids": np.tile(np.arange(length), (rows, 1))}
    return {k: v for k, v in inputs.items() if k in names}


def main(argv: list[str] | None = None) -> int:
    """Print the first-run cost of new shapes and CPU against wall time per inference."""
    import openvino as ov

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, required=True, help="ONNX bundle (its model_fp32.onnx)")
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    args = p.parse_args(argv)
    manifest = Manifest.load(args.bundle)
    compiled = ov.Core().compile_model(str(manifest.variant("fp32").path(args.bundle)), "CPU", {
        "INFERENCE_PRECISION_HINT": "bf16" if args.precision == "bf16" else "f32", "NUM_STREAMS": "1",
        "INFERENCE_NUM_THREADS": "1", "ENABLE_CPU_PINNING": "NO"})
    names = [i.get_any_name() for i in compiled.inputs]
    request = compiled.create_infer_request()

    def cpu_ms(shapes: list[tuple[int, int]]) -> float:
        start = time.process_time()
        for rows, length in shapes:
            request.infer(feed(names, rows, length))
        return 1e3 * (time.process_time() - start) / len(shapes)

    shapes = [(rows, length) for rows in range(1, 17) for length in range(10, 60, 3)]
    random.Random(0).shuffle(shapes)
    first, again = cpu_ms(shapes), cpu_ms(shapes)
    print(f"{len(shapes)} shapes: {first:.2f} ms CPU a batch the first time, {again:.2f} the second "
          f"(+{100 * (first / again - 1):.0f}% for a new shape)")
    batch = feed(names, 8, 32)
    for gap_s in (0.0, 0.002, 0.01):
        cpu, wall = 0.0, 0.0
        for _ in range(100):
            c, w = time.process_time(), time.perf_counter()
            request.infer(batch)
            cpu, wall = cpu + time.process_time() - c, wall + time.perf_counter() - w
            time.sleep(gap_s)
        print(f"batch 8 x 32, {1e3 * gap_s:.0f} ms between calls: {cpu * 10:.2f} ms CPU, {wall * 10:.2f} ms wall a call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
