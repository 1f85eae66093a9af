"""Item formatting shared by training and serving."""

from __future__ import annotations

import pytest

from rewardserve.bundle import RewardSpec
from rewardserve.enums import ModelKind
from rewardserve.formatting import (
    ChatItem,
    FormatError,
    Message,
    PairItem,
    TextItem,
    format_item,
    render_chat,
)

SPEC = RewardSpec(kind=ModelKind.pairwise, id2label={0: "reward"}, reward_label="reward", max_length=64)


def test_formats_each_item_kind_like_hh_dialogues():
    assert format_item(SPEC, TextItem("plain")) == "plain"
    assert format_item(SPEC, PairItem("\n\nHuman: hi", "\n\nAssistant: hello")) == "\n\nHuman: hi\n\nAssistant: hello"
    chat = ChatItem((Message("user", "hi"), Message("assistant", "hello")))
    assert format_item(SPEC, chat) == "\n\nHuman: hi\n\nAssistant: hello"


def test_braces_in_user_text_are_kept():
    assert format_item(SPEC, PairItem("{response}", "{x}")) == "{response}{x}"


def test_bad_chats_are_refused():
    with pytest.raises(FormatError, match=r"messages\[1\].role: must be one of"):
        render_chat(SPEC.chat_template, [Message("user", "a"), Message("bot", "b")])
    with pytest.raises(FormatError, match="must not be empty"):
        render_chat(SPEC.chat_template, [])


def test_templates_are_sandboxed():
    with pytest.raises(FormatError, match="chat template failed"):
        render_chat("{{ messages.__class__.__mro__[1].__subclasses__() }}", [Message("user", "a")])
