"""``rewardserve export BUNDLE --out DIR``: the export stage's subcommand.

Exit codes: 0 every variant passed parity; 1 a variant failed it (the message names the
variant, the metric and the value; the bundle is still written, the variant marked failed);
2 a user error (bad option, missing bundle).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

from rewardserve.enums import Precision, enum_values

PARITY_FAILED_EXIT = 1


def register(subparsers) -> None:
    """Add the ``export`` subcommand."""
    from rewardserve.export.config import ExportConfig, Int8Method, OpenVinoInt8Method, Tolerances

    help_of = {f.name: f.metadata.get("help", "") for f in fields(ExportConfig)}
    p = subparsers.add_parser(
        "export", help="export a model bundle to a parity-checked ONNX bundle",
        description="Export a model bundle to ONNX (fp32 optimized, fp16, int8) and check parity against PyTorch.",
    )
    p.add_argument("bundle", help=help_of["bundle"])
    p.add_argument("--out", required=True, help=help_of["out"])
    p.add_argument(
        "--precision", nargs="+", choices=enum_values(Precision), default=enum_values(Precision),
        help=help_of["precisions"] + " (default: all)",
    )
    texts = p.add_mutually_exclusive_group()  # one of them is required: config_from_args says so
    texts.add_argument("--texts", dest="texts_file", default=None, metavar="FILE", help=help_of["texts_file"])
    texts.add_argument("--builtin-texts", action="store_true", help=help_of["builtin_texts"])
    p.add_argument("--max-texts", type=int, default=64, help=help_of["max_texts"])
    p.add_argument("--parity-batch-size", type=int, default=8, help=help_of["parity_batch_size"])
    p.add_argument("--opset", type=int, default=17, help=help_of["opset"])
    p.add_argument("--no-optimize", dest="optimize", action="store_false", help="skip ORT fusions")
    p.add_argument("--no-throughput", dest="throughput", action="store_false", help="skip the speed measurement")
    p.add_argument("--bench-batch-size", type=int, default=8, help=help_of["bench_batch_size"])
    p.add_argument("--bench-seq-len", type=int, default=128, help=help_of["bench_seq_len"])
    p.add_argument("--bench-min-time-s", type=float, default=1.0, help=help_of["bench_min_time_s"])
    p.add_argument("--int8-method", choices=enum_values(Int8Method), default=Int8Method.per_token.value,
                   help=help_of["int8_method"])
    p.add_argument("--int8-keep-fp32", type=int, default=4, help=help_of["int8_keep_fp32"])
    p.add_argument("--calibration-texts", dest="calibration_texts_file", default=None,
                   help=help_of["calibration_texts_file"])
    p.add_argument("--no-openvino-int8", dest="openvino_int8", action="store_false", help=help_of["openvino_int8"])
    p.add_argument("--openvino-int8-method", choices=enum_values(OpenVinoInt8Method),
                   default=OpenVinoInt8Method.weights.value, help=help_of["openvino_int8_method"])
    p.add_argument("--no-openvino-packed", dest="openvino_packed", action="store_false",
                   help=help_of["openvino_packed"])
    p.add_argument("--int8-block-size", type=int, default=32, help=help_of["int8_block_size"])
    p.add_argument("--int8-no-per-channel", dest="int8_per_channel", action="store_false", help="per-tensor int8 scales")
    p.add_argument("--int8-reduce-range", action="store_true", help=help_of["int8_reduce_range"])
    p.add_argument("--overwrite", action="store_true", help=help_of["overwrite"])
    p.add_argument("--json", action="store_true", help="print the manifest (with the parity report) as JSON")
    tol = p.add_argument_group("parity tolerances ('none' disables a gate)")
    for f in fields(Tolerances):
        tol.add_argument(
            "--" + f.name.replace("_", "-"), type=_optional_float, default=f.default,
            help=f"{f.metadata['help']} (default {f.default})",
        )
    p.set_defaults(handler=run)


def _optional_float(value: str) -> float | None:
    if value.lower() == "none":
        return None
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {value!r}") from None


def config_from_args(args: argparse.Namespace):
    """Build the validated ``ExportConfig`` from parsed arguments."""
    from rewardserve.export.config import ExportConfig, Tolerances

    from rewardserve.cli import CLIError

    if args.texts_file is None and not args.builtin_texts:
        raise CLIError("parity needs texts: pass --texts FILE (a data file in any format `rewardserve train` "
                       "reads, e.g. the dev split) or --builtin-texts (16 built-in samples: a smoke test only)")
    tolerances = Tolerances(**{f.name: getattr(args, f.name) for f in fields(Tolerances)})
    return ExportConfig(
        bundle=args.bundle, out=args.out, precisions=tuple(args.precision), opset=args.opset,
        optimize=args.optimize, texts_file=args.texts_file, builtin_texts=args.builtin_texts, max_texts=args.max_texts,
        parity_batch_size=args.parity_batch_size, tolerances=tolerances, int8_per_channel=args.int8_per_channel,
        int8_method=args.int8_method, int8_block_size=args.int8_block_size, int8_keep_fp32=args.int8_keep_fp32,
        calibration_texts_file=args.calibration_texts_file, openvino_int8=args.openvino_int8,
        openvino_int8_method=args.openvino_int8_method,
        openvino_packed=args.openvino_packed,
        int8_reduce_range=args.int8_reduce_range, throughput=args.throughput,
        bench_batch_size=args.bench_batch_size, bench_seq_len=args.bench_seq_len,
        bench_min_time_s=args.bench_min_time_s, overwrite=args.overwrite,
    )


def run(args: argparse.Namespace) -> int:
    """Handle ``rewardserve export``; return the exit code."""
    from rewardserve.export.pipeline import export_bundle, failures

    manifest = export_bundle(config_from_args(args))
    if args.json:
        print(json.dumps(manifest.to_dict(), indent=2, sort_keys=True))
    else:
        print(summary(manifest))
    failed = failures(manifest)
    for message in failed.values():
        print(f"rewardserve export: parity failed: {message}", file=sys.stderr)
    return PARITY_FAILED_EXIT if failed else 0


def summary(manifest) -> str:
    """Return a short human-readable table of the variants."""
    lines = [f"ONNX bundle {manifest.directory} ({manifest.model_type})"]
    for name, v in manifest.variants.items():
        par, tp = v.parity, v.throughput
        speed = (
            f"{tp['sequences_per_s']:.1f} seq/s ({tp['speedup_vs_unoptimized_fp32']:.2f}x unoptimized fp32)"
            if tp else "not measured"
        )
        lines.append(
            f"  {name:5s} {'PASS' if v.passed else 'FAIL'}  max|dlogit|={par['max_abs_logit_diff']:.2e}  "
            f"mean|dreward|={par['mean_abs_reward_diff']:.2e}  {_prob_metric(par)}  "
            f"{par['agreement_metric']}={par['agreement']:.4f}  {speed}  fusions={v.fusions or 'none'}"
        )
    for c in manifest.combinations:  # how each can be served (rewardserve serve --backend/--precision)
        par = c.parity
        parity = f"max|dlogit|={par['max_abs_logit_diff']:.2e}  {par['agreement_metric']}={par['agreement']:.4f}" \
            if par else c.failure
        speed = f"{c.items_per_s:.1f} items/s per thread" if c.items_per_s else "speed not measured here"
        lines.append(f"  serve {c.key:22s} {'PASS' if c.passed else 'FAIL'}  {parity}  {speed}"
                     + (f"  ({c.note})" if c.note else ""))
    return "\n".join(lines)


def _prob_metric(parity: dict) -> str:
    name = parity.get("prob_metric", "max_abs_prob_diff")  # manifests before the gate lack the key
    return f"{name}={parity[name]:.2e}"


if __name__ == "__main__":
    # `python -m rewardserve.export.cli export ...` works even where rewardserve.cli does not list this stage.
    from rewardserve import cli as _cli

    _cli.STAGE_MODULES = ("rewardserve.export.cli",)
    sys.exit(_cli.main())
