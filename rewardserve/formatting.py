"""Turn an item (text, prompt + response, or chat messages) into the text a model reads.

Training, export parity and the service all call :func:`format_item`, so a model is always
served with exactly the formatting it was trained with. Torch-free.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import jinja2
import jinja2.sandbox

from rewardserve.bundle import RewardSpec

ROLES = ("system", "user", "assistant")
_PLACEHOLDER = re.compile(r"\{prompt\}|\{response\}")


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: str
    content: str


@dataclass(frozen=True)
class TextItem:
    """An already formatted text."""

    text: str


@dataclass(frozen=True)
class PairItem:
    """A prompt and one response to it."""

    prompt: str
    response: str


@dataclass(frozen=True)
class ChatItem:
    """A conversation; the last assistant message is what is scored."""

    messages: tuple[Message, ...]


Item = TextItem | PairItem | ChatItem


class FormatError(ValueError):
    """An item cannot be formatted; the message names the problem."""


@lru_cache(maxsize=16)
def _compile(template: str) -> jinja2.Template:
    # Sandboxed like transformers' apply_chat_template: templates come from model files.
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template)


def render_chat(template: str, messages: tuple[Message, ...] | list[Message]) -> str:
    """Render chat messages through a Jinja chat template."""
    if not messages:
        raise FormatError("messages: must not be empty")
    for i, m in enumerate(messages):
        if m.role not in ROLES:
            raise FormatError(f"messages[{i}].role: must be one of {list(ROLES)}, got {m.role!r}")
    payload = [{"role": m.role, "content": m.content} for m in messages]
    try:
        return _compile(template).render(messages=payload, add_generation_prompt=False)
    except jinja2.TemplateError as e:
        raise FormatError(f"chat template failed: {e}") from e


def format_pair(template: str, prompt: str, response: str) -> str:
    """Join a prompt and a response with a ``{prompt}``/``{response}`` template."""
    # One pass over the template: user text may contain braces, even "{response}".
    values = {"{prompt}": prompt, "{response}": response}
    return _PLACEHOLDER.sub(lambda m: values[m.group(0)], template)


def format_item(spec: RewardSpec, item: Item) -> str:
    """Return the text the model reads for ``item``, formatted as ``spec`` says."""
    if isinstance(item, TextItem):
        return item.text
    if isinstance(item, PairItem):
        return format_pair(spec.prompt_template, item.prompt, item.response)
    if isinstance(item, ChatItem):
        return render_chat(spec.chat_template, item.messages)
    raise FormatError(f"unsupported item type {type(item).__name__}")
