"""The models the suite serves: the bundles given, or tiny random-weight ones built once.

Tiny bundles (a 2-layer BERT, pairwise and classifier, fp32 only) make the whole suite run
in a minute; ``--pairwise runs/hh-pairwise-onnx --classifier runs/toxicity-onnx`` runs it on
the real models. Building needs torch (the export stage); serving them does not.

Example::

    models = resolve(config, work_dir)   # {"pairwise": Path, "classifier": Path}
"""

from __future__ import annotations

import logging
from pathlib import Path

from rewardserve.benchmarks.reliability.config import ReliabilityConfig

logger = logging.getLogger(__name__)


def tiny_bundle(root: Path, kind: str) -> Path:
    """Build (or reuse) a tiny fp32 ONNX bundle of ``kind`` (pairwise or classifier) under ``root``."""
    out = root / f"tiny-{kind}-onnx"
    if (out / "manifest.json").is_file():
        return out
    from rewardserve.export.config import ExportConfig, Tolerances
    from rewardserve.export.pipeline import export_bundle
    from rewardserve.training.tiny import make_tiny_bundle

    source = make_tiny_bundle(root / f"tiny-{kind}", "bert", kind)
    # Random weights give near-equal rewards, so ordering agreement is noise: gate it off.
    export_bundle(ExportConfig(bundle=source, out=out, precisions=("fp32",), throughput=False, builtin_texts=True, max_texts=8,
                               parity_batch_size=4, tolerances=Tolerances(int8_min_agreement=None), overwrite=True))
    logger.info("built tiny %s bundle %s", kind, out)
    return out


def resolve(config: ReliabilityConfig, work_dir: Path) -> dict[str, Path]:
    """The pairwise and classifier bundles to serve, building tiny ones in ``work_dir`` where none is given."""
    root = work_dir / "bundles"
    return {kind: Path(given) if given is not None else tiny_bundle(root, kind)
            for kind, given in (("pairwise", config.pairwise), ("classifier", config.classifier))}
