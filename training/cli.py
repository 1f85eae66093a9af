"""``rewardserve train pairwise|classifier`` and ``rewardserve eval``."""

from __future__ import annotations

import argparse
import json
from dataclasses import MISSING, fields
from enum import Enum
from pathlib import Path
from typing import Any

from rewardserve.enums import ModelKind

# Fields that only make sense for one kind of model.
_PAIRWISE_ONLY = {"center_rewards_coefficient", "ranking_mode", "prompt_template", "consensus"}
_CLASSIFIER_ONLY = {"text_column", "label_column", "label_map", "label_votes", "label_smoothing", "reward_label",
                    "class_weights"}
_INTERNAL = {"kind", "extra"}


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train`` and ``eval`` to the top-level CLI."""
    from rewardserve.training.config import TrainConfig

    train = sub.add_parser("train", help="train a reward model and write a model bundle")
    kinds = train.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, skip, text in (
        (ModelKind.pairwise, _CLASSIFIER_ONLY, "Bradley-Terry reward model from pairs or rankings"),
        (ModelKind.classifier, _PAIRWISE_ONLY, "classifier reward model from labelled text"),
    ):
        p = kinds.add_parser(kind.value, help=text, description=text)
        _add_config_args(p, TrainConfig, skip | _INTERNAL)
        p.set_defaults(handler=_run_train, kind_value=kind)

    ev = sub.add_parser("eval", help="evaluate a model bundle on a data file (PyTorch), or a served model on "
                        "RewardBench data (--server)")
    ev.add_argument("bundle", nargs="?", help="model bundle directory (none with --server)")
    ev.add_argument("data", help="JSONL/CSV file or hf:NAME[:SPLIT]")
    ev.add_argument("--out", help="also write the metrics as JSON here")
    ev.add_argument("--batch-size", type=int, default=64)
    ev.add_argument("--text-column", help="classifier data: text column (default: as trained)")
    ev.add_argument("--label-column", help="classifier data: label column (default: as trained)")
    ev.add_argument("--label-map", help="classifier data: RAW=NAME,... (default: as trained)")
    ev.add_argument("--label-votes", help="classifier data: vote columns COLUMN=LABEL,...: also compare the "
                    "probabilities with the vote distribution (ECE, Brier, correlation; default: as trained)")
    from rewardserve.service.cli.eval_server import add_flags as add_server_flags

    add_server_flags(ev)
    ev.set_defaults(handler=_run_eval)

    from rewardserve.training.data_stats import register as register_data

    register_data(sub)


def _add_config_args(p: argparse.ArgumentParser, cls: type, skip: set[str]) -> None:
    """One flag per config field, with the field's help text and default."""
    for f in fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = None if f.default is MISSING else f.default
        required = f.name in ("train_data", "output_dir")
        kw: dict[str, Any] = {"help": f.metadata.get("help", ""), "dest": f.name}
        if isinstance(default, bool):
            p.add_argument(flag, action="store_true", **kw)
        elif isinstance(default, Enum):
            p.add_argument(flag, choices=[m.value for m in type(default)], default=default.value, **kw)
        elif isinstance(default, int | float) and not isinstance(default, bool):
            p.add_argument(flag, type=type(default), default=default, **kw)
        else:
            p.add_argument(flag, default=default, required=required, **kw)


def _run_train(args: argparse.Namespace) -> int:
    from rewardserve.training.config import TrainConfig
    from rewardserve.training.data import parse_label_map, parse_label_votes
    from rewardserve.training.run import train

    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    values = {k: v for k, v in values.items() if k not in _INTERNAL}
    if values.get("label_map"):
        values["label_map"] = parse_label_map(values["label_map"])
    if values.get("label_votes"):
        values["label_votes"] = parse_label_votes(values["label_votes"])
    config = TrainConfig(kind=args.kind_value, **values)
    out = train(config)
    print(f"model bundle: {out}")
    metrics = json.loads((Path(out) / "reward.json").read_text())["metrics"]
    print(json.dumps(metrics, indent=2))
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    if args.server:  # a served model over gRPC: no torch
        from rewardserve.service.cli.eval_server import run

        return run(args)
    if args.bundle is None:
        raise ValueError("eval needs a model BUNDLE, or --server ADDRESS")
    from rewardserve.training.data import parse_label_map, parse_label_votes
    from rewardserve.training.evaluate import evaluate_bundle

    metrics = evaluate_bundle(
        args.bundle, args.data, args.batch_size, text_column=args.text_column,
        label_column=args.label_column, label_map=parse_label_map(args.label_map),
        label_votes=parse_label_votes(args.label_votes),
    )
    text = json.dumps(metrics, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0
