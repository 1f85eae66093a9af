"""RLHF with rewards from a running rewardserve: TRL's GRPOTrainer improves a small policy.

Every GRPO step samples ``--num-generations`` completions per prompt, sends them to the reward
server in ONE gRPC Score request (``RewardClient.as_reward_func``), and updates the policy
toward the completions that scored above their group's mean. The mean reward of each step is
printed, so you can watch it rise.

    # 1. a server (the default models; or local bundles)
    rewardserve serve --model hh=runs/hh-pairwise-onnx --model toxicity=runs/toxicity-onnx \\
        --precision int8 --port 50061 --metrics-port off
    # 2. a tiny random policy over a small word vocabulary, toward non-toxic text (CPU, minutes)
    python examples/rlhf_grpo.py --address 127.0.0.1:50061 --tiny --reward-model toxicity
    # toward higher HH reward with a toxicity penalty, or with a real causal LM
    python examples/rlhf_grpo.py --tiny --reward-model hh --penalty-model toxicity --penalty-weight 2
    python examples/rlhf_grpo.py --policy path/or/hub-name --reward-model hh --prompts prompts.txt

Needs the ``examples`` extra (``pip install -e .[examples]``: TRL). See examples/README.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

logger = logging.getLogger("rlhf_grpo")

# The tiny policy's whole vocabulary: friendly, everyday and rude words. The policy starts out
# sampling them about uniformly; the reward model decides which ones it should learn to prefer.
_WORDS = """the a and you we it is are my your this that to of with for today day night sunny rain garden
coffee music dog cat friend thanks lovely kind nice great happy help love good please welcome
crap damn hell hate loser stupid ugly idiot shut up"""
TINY_WORDS = tuple(_WORDS.split())
HH_PROMPT = "\n\nHuman: {}\n\nAssistant: "
TINY_PROMPTS = ("say something to your friend", "tell me about your day", "what do you think of my dog",
                "say something about the rain", "talk about your garden", "what is your music")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The example's flags."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--address", default="127.0.0.1:50051", help="reward server(s): HOST:PORT[,HOST:PORT] or dns:///")
    p.add_argument("--reward-model", default="", help="served model whose reward is maximised (default: server's)")
    p.add_argument("--normalize", action="store_true", help="standardise rewards with the model's statistics")
    p.add_argument("--penalty-model", help="classifier whose P(--penalty-label) is subtracted")
    p.add_argument("--penalty-label", help="penalty class (default: anything but its reward label)")
    p.add_argument("--penalty-weight", type=float, default=1.0, help="reward - weight x P(penalty label)")
    p.add_argument("--empty-reward", type=float, default=-1.0, help="reward of an empty completion (not sent)")
    policy = p.add_mutually_exclusive_group(required=True)
    policy.add_argument("--policy", help="causal LM: a local directory or a Hugging Face name")
    policy.add_argument("--tiny", action="store_true", help="a tiny random GPT-2 over a word vocabulary (offline)")
    p.add_argument("--prompts", type=Path, help="prompts, one per line (default: a few built-in ones)")
    p.add_argument("--prompt-format", choices=["plain", "hh"], default="plain",
                   help="hh: wrap each prompt as an Anthropic HH dialogue turn (what the hh model was trained on)")
    p.add_argument("--show", type=int, default=4, help="print this many completions of the trained policy")
    p.add_argument("--steps", type=int, default=40, help="GRPO optimizer steps")
    p.add_argument("--prompts-per-step", type=int, default=4, help="distinct prompts per step")
    p.add_argument("--num-generations", type=int, default=8, help="completions sampled per prompt (the group)")
    p.add_argument("--max-completion-length", type=int, default=8, help="tokens per completion")
    p.add_argument("--learning-rate", type=float, default=None, help="default: 3e-3 tiny, 1e-6 otherwise")
    p.add_argument("--beta", type=float, default=0.0, help="KL coefficient against the initial policy")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    p.add_argument("--seed", type=int, default=0, help="random seed (policy init, sampling, data order)")
    p.add_argument("--output-dir", type=Path, default=Path("runs/rlhf-grpo"), help="trainer output directory")
    p.add_argument("--history", type=Path, help="write the per-step mean rewards here as JSON")
    return p.parse_args(argv)


def tiny_policy(seed: int, words: tuple[str, ...] = TINY_WORDS, prompts: tuple[str, ...] = TINY_PROMPTS):
    """A 2-layer GPT-2 with random weights and a word-level tokenizer (nothing downloaded)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<unk>"]
    vocab = list(dict.fromkeys([*specials, *words, *(w for p in prompts for w in p.split())]))
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<eos>",
                                        unk_token="<unk>", padding_side="left")
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(vocab), n_embd=64, n_layer=2, n_head=4, n_positions=64,
                        bos_token_id=1, eos_token_id=1, pad_token_id=0)
    return GPT2LMHeadModel(config), tokenizer


def load_policy(args: argparse.Namespace):
    """The policy model and its tokenizer (left padding: GRPO generates after the prompt)."""
    if args.tiny:
        return tiny_policy(args.seed)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.policy, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return AutoModelForCausalLM.from_pretrained(args.policy), tokenizer


def prompts_dataset(args: argparse.Namespace):
    """The training prompts, repeated so every step has ``--prompts-per-step`` of them."""
    from datasets import Dataset

    prompts = args.prompts.read_text().splitlines() if args.prompts else list(TINY_PROMPTS)
    prompts = [p for p in prompts if p.strip()]
    if not prompts:
        raise SystemExit(f"{args.prompts}: no prompts")
    if args.prompt_format == "hh":  # the tiny policy reads "Human:"/"Assistant:" as unknown words: harmless
        prompts = [HH_PROMPT.format(p) for p in prompts]
    needed = args.steps * args.prompts_per_step
    return Dataset.from_dict({"prompt": (prompts * (needed // len(prompts) + 1))[:needed]})


def grpo_config(args: argparse.Namespace, suppress: list[int]):
    """GRPO settings: one generation batch per optimizer step, metrics logged every step."""
    import torch
    from trl import GRPOConfig

    lr = args.learning_rate if args.learning_rate is not None else (3e-3 if args.tiny else 1e-6)
    return GRPOConfig(
        output_dir=str(args.output_dir), max_steps=args.steps, learning_rate=lr, lr_scheduler_type="constant",
        per_device_train_batch_size=args.prompts_per_step * args.num_generations,
        num_generations=args.num_generations, max_completion_length=args.max_completion_length,
        temperature=args.temperature, beta=args.beta, seed=args.seed, data_seed=args.seed, logging_steps=1,
        save_strategy="no", report_to="none", use_cpu=not torch.cuda.is_available(), bf16=False,
        disable_tqdm=True, gradient_checkpointing=False, generation_kwargs={"suppress_tokens": suppress} if suppress else None,
    )


def train(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run GRPO against the reward server; return one {step, reward, ...} record per step."""
    from rewardserve.service.client import RewardClient
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOTrainer

    policy, tokenizer = load_policy(args)
    # The tiny policy always writes max-completion-length words: no EOS, padding or unknowns.
    suppress = [tokenizer.convert_tokens_to_ids(t) for t in ("<pad>", "<eos>", "<unk>")] if args.tiny else []
    history: list[dict[str, Any]] = []

    class LogReward(TrainerCallback):
        def on_log(self, _args, state, _control, logs=None, **_kw):
            if logs and "reward" in logs:
                row = {"step": state.global_step, "reward": logs["reward"], "reward_std": logs.get("reward_std")}
                history.append(row)
                logger.info("step %3d  mean reward %+.4f", row["step"], row["reward"])

    with RewardClient(args.address, timeout_s=60) as client:
        reward = client.as_reward_func(
            args.reward_model, normalize=args.normalize, penalty_model=args.penalty_model,
            penalty_label=args.penalty_label, penalty_weight=args.penalty_weight, empty_reward=args.empty_reward)
        trainer = GRPOTrainer(model=policy, reward_funcs=[reward], args=grpo_config(args, suppress),
                              train_dataset=prompts_dataset(args), processing_class=tokenizer,
                              callbacks=[LogReward()])
        trainer.remove_callback(PrinterCallback)  # LogReward prints the one line per step that matters
        trainer.train()
        show_samples(trainer.model, tokenizer, reward, args, suppress)
        reward.close()
    return history


def show_samples(policy, tokenizer, reward, args: argparse.Namespace, suppress: list[int]) -> None:
    """Print a few completions of the trained policy to the first prompt, with their rewards."""
    if args.show < 1:
        return
    prompt = prompts_dataset(args)[0]["prompt"]
    inputs = tokenizer([prompt] * args.show, return_tensors="pt", padding=True).to(policy.device)
    out = policy.generate(**inputs, do_sample=True, max_new_tokens=args.max_completion_length,
                          temperature=args.temperature, suppress_tokens=suppress or None,
                          pad_token_id=tokenizer.pad_token_id)
    texts = tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    for text, r in zip(texts, reward([prompt] * len(texts), texts), strict=True):
        logger.info("  %+.3f  %r -> %r", r if r is not None else float("nan"), prompt.strip(), text)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Parse flags, train, print a summary; return the per-step history."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    history = train(args)
    k = max(1, len(history) // 5)
    first = sum(r["reward"] for r in history[:k]) / k
    last = sum(r["reward"] for r in history[-k:]) / k
    logger.info("mean reward: first %d steps %+.4f -> last %d steps %+.4f", k, first, k, last)
    if args.history is not None:
        args.history.parent.mkdir(parents=True, exist_ok=True)
        args.history.write_text(json.dumps({"argv": argv if argv is not None else sys.argv[1:],
                                            "steps": history, "first": first, "last": last}, indent=2) + "\n")
    return history


if __name__ == "__main__":
    main()
