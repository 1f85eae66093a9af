"""``TrainConfig``: every knob of a training run, validated once, passed down whole."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

from rewardserve.bundle import HH_CHAT_TEMPLATE
from rewardserve.enums import ModelKind, Truncation


class Consensus(str, Enum):
    """How several labellers' judgements of a pair become a training target."""

    hard = "hard"  # majority side as a 0/1 label; 50/50 splits dropped and counted
    weighted = "weighted"  # the same, each pair's loss weighted by its majority share
    soft = "soft"  # Bradley-Terry against the vote share p: -(p log s(d) + (1-p) log s(-d))


class RankingMode(str, Enum):
    """How K-way rankings are trained."""

    pairs = "pairs"  # every comparison is its own batch element (TRL RewardTrainer style)
    per_prompt = "per_prompt"  # all comparisons of a prompt in one element, loss averaged per prompt


def _help(text: str, default: Any = None, **kw: Any) -> Any:
    if "default_factory" in kw:
        return field(metadata={"help": text}, **kw)
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class TrainConfig:
    """A reward-model training run (``rewardserve train pairwise|classifier``).

    Example::

        TrainConfig(kind=ModelKind.pairwise, train_data="pairs.jsonl", output_dir="models/rm")
    """

    kind: ModelKind = _help("pairwise (Bradley-Terry on preferences) or classifier (cross-entropy)")
    train_data: str = _help("training data: JSONL/CSV path or hf:NAME[:SPLIT]")
    output_dir: str = _help("where the model bundle is written")
    eval_data: str | None = _help("held-out data for the final metrics (same format as train_data)")
    base_model: str = _help("local path or Hub name; default: the bundled all-MiniLM-L6-v2", "")
    max_length: int = _help("tokens per text, special tokens included", 256)
    truncation_side: Truncation = _help("which end of long texts is cut; left keeps the response", Truncation.left)
    learning_rate: float = _help("peak learning rate (linear decay after warmup)", 3e-5)
    num_epochs: float = _help("passes over the training data", 2.0)
    max_steps: int = _help("stop after this many optimizer steps (-1: use num_epochs)", -1)
    batch_size: int = _help("groups (pairs, prompts or texts) per device per step", 16)
    grad_accum_steps: int = _help("gradient accumulation steps", 1)
    warmup_ratio: float = _help("fraction of steps with linear warmup", 0.1)
    weight_decay: float = _help("AdamW weight decay", 0.01)
    seed: int = _help("random seed", 0)
    no_group_by_length: bool = _help("batch in random order instead of grouping texts of similar length", False)
    center_rewards_coefficient: float = _help(
        "TRL's centering: adds coef * mean over groups of (sum of the group's rewards)^2 (0: off)", 0.0)
    ranking_mode: RankingMode = _help("pairs or per_prompt (InstructGPT-style)", RankingMode.pairs)
    consensus: Consensus = _help("several labellers' judgements: hard, weighted or soft targets", Consensus.hard)
    skip_invalid: bool = _help("skip and count bad records instead of stopping at the first", False)
    prompt_template: str = _help("how prompt and response become one text", "{prompt}{response}")
    text_column: str = _help("classifier: column holding the text", "text")
    label_column: str = _help("classifier: column holding the label", "label")
    label_map: dict[str, str] | None = _help("classifier: raw label -> class name, e.g. 0=toxic,2=non_toxic")
    label_votes: dict[str, str] | None = _help(
        "classifier: vote column -> class name, e.g. hate_speech=toxic,neither=non_toxic: train on the votes")
    label_smoothing: float = _help("classifier: mix eps of the uniform distribution into the targets", 0.0)
    reward_label: str = _help("classifier: the class whose logit is the reward", "")
    class_weights: str = _help("classifier: none, balanced, or comma-separated weights per class", "none")
    lora_rank: int = _help("LoRA rank through peft (0: full fine-tuning)", 0)
    lora_alpha: int = _help("LoRA alpha", 32)
    norm_samples: int = _help("training texts scored for the normalisation statistics", 1024)
    eval_batch_size: int = _help("batch size for scoring (eval, statistics)", 64)
    logging_steps: int = _help("log loss, accuracy and margin every N steps", 10)
    save_steps: int = _help("checkpoint every N steps (0: only at the end); resume with resume", 0)
    resume: bool = _help("resume from the last checkpoint in output_dir/checkpoints", False)
    bf16: str = _help("auto (bf16 on a GPU that supports it), yes or no", "auto")
    report_to: str = _help("Trainer loggers: none, tensorboard, wandb, ...", "none")
    extra: dict[str, Any] = _help("extra HF TrainingArguments, passed through", default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.kind, ModelKind):
            object.__setattr__(self, "kind", ModelKind(self.kind))
        for name in ("truncation_side", "ranking_mode", "consensus"):
            ftype = {"truncation_side": Truncation, "ranking_mode": RankingMode, "consensus": Consensus}[name]
            object.__setattr__(self, name, ftype(getattr(self, name)))
        if not self.train_data:
            raise ValueError("train_data is required")
        if not self.output_dir:
            raise ValueError("output_dir is required")
        if self.truncation_side is Truncation.error:
            raise ValueError("truncation_side must be left or right for training")
        if not 8 <= self.max_length <= 32768:
            raise ValueError(f"max_length must be between 8 and 32768, got {self.max_length}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.num_epochs <= 0 and self.max_steps <= 0:
            raise ValueError("num_epochs must be > 0 (or set max_steps > 0)")
        for name in ("batch_size", "grad_accum_steps", "eval_batch_size", "logging_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.center_rewards_coefficient < 0:
            raise ValueError("center_rewards_coefficient must be >= 0")
        if self.lora_rank < 0:
            raise ValueError("lora_rank must be >= 0")
        if "{response}" not in self.prompt_template:
            raise ValueError("prompt_template must contain '{response}'")
        if self.bf16 not in ("auto", "yes", "no"):
            raise ValueError(f"bf16 must be auto, yes or no, got {self.bf16!r}")
        if self.kind is ModelKind.classifier and not self.reward_label:
            raise ValueError("reward_label is required for a classifier (the class whose logit is the reward)")
        if self.kind is ModelKind.pairwise and self.class_weights != "none":
            raise ValueError("class_weights applies to classifiers only")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.kind is ModelKind.pairwise and (self.label_votes or self.label_smoothing):
            raise ValueError("label_votes and label_smoothing apply to classifiers only")

    @property
    def resolved_base_model(self) -> str:
        """The base model to load (the bundled MiniLM when none is given)."""
        if self.base_model:
            return self.base_model
        from rewardserve.training.tiny import default_base_model

        return default_base_model()

    @property
    def chat_template_fallback(self) -> str:
        """Chat template for tokenizers that have none (HH style)."""
        return HH_CHAT_TEMPLATE

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, saved as ``training_config.json`` in the bundle."""
        d = asdict(self)
        for f in fields(self):
            if isinstance(d[f.name], Enum):
                d[f.name] = d[f.name].value
        return d

    @property
    def checkpoint_dir(self) -> Path:
        """Where Trainer checkpoints go (inside the output bundle directory)."""
        return Path(self.output_dir) / "checkpoints"
