"""``export_bundle``: model bundle -> parity-checked ONNX bundle, the one entry point of export.

Example::

    manifest = export_bundle(ExportConfig(bundle="models/tox", out="models/tox-onnx", texts_file="data/tox/dev.csv"))
    failed = failures(manifest)   # {} when every variant passed parity
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from rewardserve.export.config import ExportConfig, Int8Method
from rewardserve.export.onnx_export import SourceModel, export_onnx, load_source, save_tokenizer
from rewardserve.export.optimize import CPU_FUSE_ATTENTION, heads_and_hidden, optimize_onnx
from rewardserve.export.parity import build_runs, compare, gate, onnx_logits, torch_logits
from rewardserve.export.per_token import sensitivity
from rewardserve.export.precision import PROVIDERS, make_variant, variant_method
from rewardserve.export.serving import record_combinations, write_reference
from rewardserve.export.texts import ParityTexts, load_texts
from rewardserve.export.throughput import measure_file, synthetic_feeds
from rewardserve.service.engine.encoding import TextEncoder

from rewardserve.bundle import REWARD_FILE
from rewardserve.enums import Precision
from rewardserve.files import file_sha256
from rewardserve.manifest import Manifest, VariantInfo, host_fingerprint

logger = logging.getLogger(__name__)

REFERENCE_FILE = "model_fp32_unoptimized.onnx"
TOKENIZER_FILE = "tokenizer.json"
_TOOLS = ("torch", "transformers", "optimum-onnx", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino")


def variant_file(precision: Precision) -> str:
    """File name of a variant inside the ONNX bundle."""
    return f"model_{Precision(precision).value}.onnx"


def export_bundle(config: ExportConfig) -> Manifest:
    """Export, optimize, convert, check parity and measure; write the ONNX bundle to ``config.out``.

    Returns the saved manifest. A variant that fails parity is written and marked
    ``passed=False`` with the reason in ``failure``; callers decide whether that is fatal.
    """
    _check_out(config)
    config.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=config.out.parent, prefix=f".{config.out.name}.tmp-") as tmp:
        work = Path(tmp)
        manifest = _build(config, work)
        manifest.save(work)
        if config.out.exists():
            shutil.rmtree(config.out)
        # Rename the finished bundle into place: a crash never leaves a half-written bundle.
        work.rename(config.out)
        Path(tmp).mkdir()  # the context manager removes it again
    logger.info("wrote ONNX bundle %s", config.out)
    return Manifest.load(config.out)


def failures(manifest: Manifest) -> dict[str, str]:
    """Return ``{precision: failure message}`` for every variant that failed parity."""
    return {k: v.failure for k, v in manifest.variants.items() if not v.passed}


def _check_out(config: ExportConfig) -> None:
    if config.out.exists() and any(config.out.iterdir()) and not config.overwrite:
        raise ValueError(f"out {config.out} exists and is not empty (pass overwrite/--overwrite to replace it)")


def _build(config: ExportConfig, work: Path) -> Manifest:
    steps = 5
    logger.info("[1/%d] loading %s", steps, config.bundle)
    source = load_source(config.bundle)
    fingerprint = bundle_fingerprint(config.bundle)

    logger.info("[2/%d] exporting %s to ONNX (opset %d)", steps, source.model_type, config.opset)
    reference = export_onnx(source, work / REFERENCE_FILE, config.opset)
    inputs, outputs = _io_names(reference)
    texts = _parity_texts(config, source)
    save_tokenizer(source, work)  # first: parity encodes with the server's encoder of this very file
    encoder = TextEncoder.from_file(work / TOKENIZER_FILE, source.spec.max_length)
    runs = build_runs(source, texts, inputs, config.parity_batch_size, encoder)
    graphs, fusions = _optimized_graphs(config, source, reference, work)

    logger.info("[3/%d] writing variants %s", steps, [p.value for p in config.precisions])
    keep_fp32 = _int8_keep_fp32(config, source, graphs[Precision.int8], inputs, runs)
    files = {}
    for p in config.precisions:
        files[p] = make_variant(p, graphs[p], work / variant_file(p), config, keep_fp32)
        logger.info("  %s -> %s (%.1f MB)", p.value, files[p].name, files[p].stat().st_size / 1e6)
    for graph in set(graphs.values()) - {reference}:
        graph.unlink(missing_ok=True)
    shutil.copyfile(config.bundle / REWARD_FILE, work / REWARD_FILE)  # byte for byte: the contract

    logger.info("[4/%d] parity against PyTorch fp32", steps)
    ref_logits = torch_logits(source, runs)
    parity, failure = {}, {}
    for p, path in files.items():
        parity[p] = compare(ref_logits, onnx_logits(path, runs), source.spec.kind, source.spec.reward_index)
        failure[p] = gate(p, parity[p], config.tolerances)
        parity[p]["tolerances"] = config.tolerances.of(p, parity[p]["prob_metric"])  # the gates it was held to, beside the values
        _log_parity(p, parity[p], failure[p])
    logger.info("  served combinations (backend x precision) on the server's encoding")
    reference_arrays, reference_info = write_reference(source, encoder, texts.texts, inputs, work)
    combinations = record_combinations(config, source, files, runs, ref_logits, parity, failure, reference_arrays,
                                       reference, _calibration_batches(config, source, inputs, runs, encoder))

    logger.info("[5/%d] throughput on CPU%s", steps, "" if config.throughput else " (skipped)")
    throughput, ref_throughput = _throughput(config, source, inputs, reference, files)

    variants = {
        p.value: VariantInfo(
            precision=p, file=path.name, opset=config.opset, inputs=inputs, outputs=outputs,
            providers=PROVIDERS[p], sha256=file_sha256(path), passed=not failure[p],
            fusions=fusions[p], parity=parity[p], throughput=throughput.get(p, {}),
            failure=failure[p], method=variant_method(p, config, keep_fp32),
        )
        for p, path in files.items()
    }
    return Manifest(
        source_fingerprint=fingerprint, model_type=source.model_type, variants=variants,
        pad_token_id=source.pad_token_id, created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        embedding_rows=source.model.get_input_embeddings().num_embeddings,
        tool_versions=_tool_versions(),
        reference={"file": REFERENCE_FILE, "sha256": file_sha256(reference), "throughput": ref_throughput},
        parity_data={**texts.describe(), "runs": [r.name for r in runs], "batch_size": config.parity_batch_size},
        tokenizer_sha256=file_sha256(work / TOKENIZER_FILE),
        reward_sha256=file_sha256(work / REWARD_FILE),
        combinations=combinations, host=host_fingerprint(), reference_logits=reference_info,
    )


def _parity_texts(config: ExportConfig, source: SourceModel) -> ParityTexts:
    # ExportConfig requires texts_file or builtin_texts: there is no silent fallback to the built-in texts.
    return load_texts(config.texts_file, source.spec, config.max_texts, builtin=config.builtin_texts,
                      text_column=_trained_text_column(config.bundle))


def _trained_text_column(bundle: Path) -> str | None:
    """The text column a classifier was trained on (training_config.json), tried first in texts files."""
    recipe = bundle / "training_config.json"
    if not recipe.is_file():
        return None
    value = json.loads(recipe.read_text()).get("text_column")
    return value if isinstance(value, str) and value else None


def _optimized_graphs(config: ExportConfig, source: SourceModel, reference: Path, work: Path):
    """The fp32 graph each variant derives from, and its fusions: CPU graph for fp32/int8, fully fused for fp16."""
    if not config.optimize:
        return dict.fromkeys(Precision, reference), {p: {} for p in Precision}
    heads = heads_and_hidden(source.model.config)
    cpu = work / ".model_fp32_cpu.onnx"
    cpu_fusions = optimize_onnx(reference, cpu, source.model_type, *heads, fuse_attention=CPU_FUSE_ATTENTION)
    graphs, fusions = dict.fromkeys(Precision, cpu), dict.fromkeys(Precision, cpu_fusions)
    if Precision.fp16 in config.precisions and not CPU_FUSE_ATTENTION:
        graphs[Precision.fp16] = work / ".model_fp32_gpu.onnx"
        fusions[Precision.fp16] = optimize_onnx(reference, graphs[Precision.fp16], source.model_type, *heads)
    return graphs, fusions


def _calibration_batches(config: ExportConfig, source: SourceModel, inputs: list[str], runs, encoder):
    """One-text batches of the calibration texts (the server's encoding), else of the parity texts."""
    if config.calibration_texts_file is None:
        return runs[0].batches
    texts = load_texts(config.calibration_texts_file, source.spec, config.max_texts,
                       text_column=_trained_text_column(config.bundle))
    return build_runs(source, texts, inputs, config.parity_batch_size, encoder)[0].batches


def _int8_keep_fp32(config: ExportConfig, source: SourceModel, graph: Path, inputs: list[str], runs) -> tuple[str, ...]:
    """Names of the matmuls the per-token int8 variant keeps in fp32: the largest calibration errors."""
    if Precision.int8 not in config.precisions or config.int8_method is not Int8Method.per_token \
            or not config.int8_keep_fp32:
        return ()
    if config.calibration_texts_file is None:
        batches = runs[-1].batches  # the batched parity run
    else:
        texts = load_texts(config.calibration_texts_file, source.spec, config.max_texts,
                           text_column=_trained_text_column(config.bundle))
        batches = build_runs(source, texts, inputs, config.parity_batch_size)[-1].batches
    errors = sensitivity(graph, batches)
    keep = tuple(sorted(errors, key=errors.get, reverse=True)[: config.int8_keep_fp32])
    logger.info("  int8: keeping fp32 %s (relative error %s)", keep, [round(errors[k], 4) for k in keep])
    return keep


def _throughput(config: ExportConfig, source: SourceModel, inputs: list[str], reference: Path, files: dict):
    if not config.throughput:
        return {}, {}
    seq_len = min(config.bench_seq_len, source.spec.max_length)
    feeds = synthetic_feeds(
        inputs, config.bench_batch_size, seq_len, len(source.tokenizer), source.pad_token_id, config.seed
    )
    base = measure_file(reference, feeds, min_time_s=config.bench_min_time_s)
    result = {}
    for p, path in files.items():
        result[p] = measure_file(path, feeds, min_time_s=config.bench_min_time_s)
        result[p]["speedup_vs_unoptimized_fp32"] = result[p]["sequences_per_s"] / base["sequences_per_s"]
    return result, base


def _log_parity(p: Precision, metrics: dict, failure: str) -> None:
    logger.info(
        "  %s: max|dlogit|=%.3g mean|dreward|=%.3g %s=%.3g %s=%.4f non_finite=%d -> %s",
        p.value, metrics["max_abs_logit_diff"], metrics["mean_abs_reward_diff"], metrics["prob_metric"],
        metrics[metrics["prob_metric"]],
        metrics["agreement_metric"], metrics["agreement"], metrics["non_finite"], "FAILED " + failure if failure else "ok",
    )


def _io_names(path: Path) -> tuple[list[str], list[str]]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inputs, outputs = [i.name for i in graph.input], [o.name for o in graph.output]
    if outputs != ["logits"]:
        raise ValueError(f"exported graph returns {outputs}, expected ['logits']")
    return inputs, outputs


def bundle_fingerprint(bundle: Path) -> str:
    """Return a sha256 over the names and contents of every file in a model bundle."""
    h = hashlib.sha256()
    for path in sorted(p for p in Path(bundle).rglob("*") if p.is_file()):
        h.update(str(path.relative_to(bundle)).encode() + b"\0" + file_sha256(path).encode())
    return h.hexdigest()


def _tool_versions() -> dict[str, str]:
    found = {}
    for name in _TOOLS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found
