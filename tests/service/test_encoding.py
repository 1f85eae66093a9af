"""Windowed tokenization: a long text tokenized near the end it keeps gives exactly the whole text's tokens."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rewardserve.service.engine.encoding import TextEncoder
from rewardserve.training.tiny import tiny_tokenizer
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from rewardserve.enums import Truncation

WORDS = ["the", "assistant", "Human:", "don't", "naïve", "3.14159", "e-mail", "🙂", "漢字", "Ünïcödé",
         "supercalifragilisticexpialidocious", "(tab)", "...", "x" * 40, "well,", "\u00e9t\u00e9"]
SEPARATORS = [" ", " ", " ", "\n", "\n\n", "\t", "  ", " \n "]


def _trained(pre_tokenizer) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    if pre_tokenizer is not None:
        tok.pre_tokenizer = pre_tokenizer
    corpus = [" ".join(WORDS) * 3, "Human: hello there\n\nAssistant: hi, how can I help?"] * 20
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["[UNK]"]))
    return tok


@pytest.fixture(scope="module")
def tokenizers() -> dict[str, Tokenizer]:
    return {
        "bert": tiny_tokenizer("bert").backend_tokenizer,   # BertPreTokenizer + BertNormalizer, WordPiece
        "gpt2": tiny_tokenizer("gpt2").backend_tokenizer,   # byte-level BPE
        "metaspace": _trained(pre_tokenizers.Metaspace()),  # SentencePiece-style
    }


texts = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPARATORS)), min_size=0, max_size=400).map(
    lambda parts: "".join(w + s for w, s in parts))


@settings(max_examples=60, deadline=None)
@given(st.lists(texts, min_size=1, max_size=4), st.sampled_from([8, 24, 64]),
       st.sampled_from([Truncation.left, Truncation.right]), st.sampled_from(["bert", "gpt2", "metaspace"]))
def test_windowed_encoding_equals_the_whole_texts(tokenizers, batch, max_length, side, family):
    windowed = TextEncoder(Tokenizer.from_str(tokenizers[family].to_str()), max_length)
    whole = TextEncoder(Tokenizer.from_str(tokenizers[family].to_str()), max_length)
    whole.window_chars = 0
    assert windowed.window_chars > 0  # these pre-tokenizers split at whitespace: windows are on
    for a, b in zip(windowed.encode_batch(batch, side), whole.encode_batch(batch, side), strict=True):
        assert a.ids.tolist() == b.ids.tolist() and a.type_ids.tolist() == b.type_ids.tolist()
        assert a.truncated == b.truncated


def test_a_long_text_is_tokenized_near_the_end_it_keeps(tokenizers):
    encoder = TextEncoder(Tokenizer.from_str(tokenizers["bert"].to_str()), 64)
    text = "Human: " + "tell me more about it please " * 150  # ~4,000 characters
    left, right = encoder._windowed(text, Truncation.left), encoder._windowed(text, Truncation.right)
    assert text.endswith(left) and text.startswith(right) and len(left) < len(text) / 4
    assert encoder._windowed(text, Truncation.error) is text  # error mode counts every token
    assert encoder._windowed("short", Truncation.left) == "short"


def test_a_pre_tokenizer_that_does_not_split_at_whitespace_turns_windows_off():
    assert TextEncoder(_trained(None), 64).window_chars == 0  # BPE over the raw text: not local


def test_a_window_with_too_few_tokens_is_widened_not_replaced_by_the_whole_text(tokenizers):
    encoder = TextEncoder(Tokenizer.from_str(tokenizers["bert"].to_str()), 16)
    whole = TextEncoder(Tokenizer.from_str(tokenizers["bert"].to_str()), 16)
    whole.window_chars = 0
    text = "word" + "           word" * 400  # ~15 characters per token: the first window is too short
    seen: list[int] = []
    encode = encoder._tok.encode
    encoder._tok = type("Spy", (), {"__getattr__": lambda self, name: getattr(whole._tok, name),
                                    "encode": lambda self, t, **kw: seen.append(len(t)) or encode(t, **kw)})()
    [a], [b] = encoder.encode_batch([text], Truncation.left), whole.encode_batch([text], Truncation.left)
    assert a.ids.tolist() == b.ids.tolist() and a.truncated
    assert seen and all(n < len(text) for n in seen)  # wider windows, never the whole 6,000 characters
