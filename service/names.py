"""Model names as HTTP clients send them: aliases, and strings stripped from their texts.

RL frameworks name the reward model their own way: verl sends ``model`` = the reward model's
*path* from its config, so ``model_aliases`` maps such names (``ALIAS=NAME``) to a served model
or composite. OpenRLHF's trainer posts decoded queries with the policy's special tokens in
the text (EOS, pad, chat markers); ``http_strip`` lists, per served model, strings removed from
every HTTP text before it is formatted and tokenized (gRPC items are never altered).

Example::

    parse_aliases(["/models/rm=hh"])                    # (("/models/rm", "hh"),)
    parse_strip({"hh": ["</s>", "<|im_end|>"]})         # (("hh", ("</s>", "<|im_end|>")),)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Aliases = tuple[tuple[str, str], ...]
Strip = tuple[tuple[str, tuple[str, ...]], ...]


def _specs(value: Any) -> list[str]:
    if isinstance(value, str):  # env: "a=x,b=y"
        return [v for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def _split(spec: str, what: str) -> tuple[str, str]:
    left, sep, right = spec.partition("=")
    if not sep or not left.strip() or not right:
        raise ValueError(f"expected {what}, got {spec!r}")
    return left.strip(), right


def parse_aliases(value: Any) -> Aliases:
    """``ALIAS=NAME`` strings (CLI, env) or a table ``{alias = "name"}`` (config file)."""
    if isinstance(value, tuple) and all(isinstance(v, tuple) for v in value):
        return value
    if isinstance(value, Mapping):
        return tuple((str(k), str(v)) for k, v in value.items())
    return tuple((a, n.strip()) for a, n in (_split(s, "ALIAS=NAME") for s in _specs(value)))


def parse_strip(value: Any) -> Strip:
    """``MODEL=STRING`` strings (repeat per string) or a table ``{model = ["</s>", ...]}``."""
    if isinstance(value, tuple) and all(isinstance(v, tuple) for v in value):
        return value
    merged: dict[str, list[str]] = {}
    if isinstance(value, Mapping):
        for k, v in value.items():
            merged.setdefault(str(k), []).extend([v] if isinstance(v, str) else [str(x) for x in v])
    else:
        for model, text in (_split(s, "MODEL=STRING") for s in _specs(value)):
            merged.setdefault(model, []).append(text)
    return tuple((m, tuple(dict.fromkeys(s for s in texts if s))) for m, texts in merged.items())


def check_names(aliases: Aliases, strip: Strip, scorable: Sequence[str]) -> None:
    """Raise ValueError unless every alias points at a served name and none hides one."""
    for alias, name in aliases:
        if name not in scorable:
            raise ValueError(f"model_aliases: {alias!r} -> {name!r}, which is not a served model or "
                             f"composite ({list(scorable)})")
        if alias in scorable:
            raise ValueError(f"model_aliases: {alias!r} is already a served model or composite")
    for model, _ in strip:
        if model not in scorable:
            raise ValueError(f"http_strip: {model!r} is not a served model or composite ({list(scorable)})")
