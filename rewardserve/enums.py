"""Choices shared by the CLI, the configs and the bundle contract, as ``str`` Enums."""

from __future__ import annotations

from enum import Enum


class ModelKind(str, Enum):
    """What a reward model predicts."""

    pairwise = "pairwise"  # one logit; trained with Bradley-Terry on preference pairs
    classifier = "classifier"  # N logits; the reward is the logit of one named label


class Truncation(str, Enum):
    """Which end of a too-long text is cut. ``error`` refuses instead (serving only)."""

    left = "left"
    right = "right"
    error = "error"


class TextFormat(str, Enum):
    """How an item becomes the text the model reads."""

    plain = "plain"  # the text as given
    prompt_response = "prompt_response"  # prompt + response through a template
    chat_template = "chat_template"  # messages through the tokenizer's chat template


class Precision(str, Enum):
    """Numeric precision of an exported ONNX variant."""

    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"

    def __str__(self) -> str:  # argparse prints choices with str()
        return self.value


class BatcherFailurePolicy(str, Enum):
    """What a served model whose batcher task dies does (``rewardserve serve --on-batcher-failure``).

    Its health turns NOT_SERVING either way; ``restart`` starts a fresh batcher and serves again,
    ``exit`` stops the server with exit code 1 (for a supervisor to restart).
    """

    restart = "restart"
    exit = "exit"

    def __str__(self) -> str:
        return self.value


def enum_values(enum_cls: type[Enum]) -> list[str]:
    """Return the string values of an Enum, for CLI choices and error messages."""
    return [m.value for m in enum_cls]


class Provider(str, Enum):
    """Where ONNX Runtime runs: ``auto`` picks CUDA when onnxruntime offers it, else CPU."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"

    def __str__(self) -> str:
        return self.value


class EngineLayout(str, Enum):
    """Where ``serve --processes N`` runs the models (``rewardserve serve --engine``).

    ``per-process``: N whole servers, each with its own copy of every model and its own batches.
    ``shared``: N edge processes (decode, validate, tokenize) hand token ids to one engine process
    that holds the models and forms one batch per model across all of them. ``auto``: shared on
    CUDA (one global batch per device, one copy of the weights), per-process on CPU.
    """

    auto = "auto"
    per_process = "per-process"
    shared = "shared"

    def __str__(self) -> str:
        return self.value


class ModelErrorPolicy(str, Enum):
    """What a model that fails to load does: ``fail`` stops the server (exit non-zero);
    ``skip`` logs the error and serves the healthy models (exit non-zero if none loads)."""

    fail = "fail"
    skip = "skip"

    def __str__(self) -> str:
        return self.value
