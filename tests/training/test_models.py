"""Base-model loading: pad tokens for decoders, reward at the last real token."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rewardserve.training.evaluate import score_texts
from rewardserve.training.models import load_model_and_tokenizer
from rewardserve.training.tiny import DECODER_FAMILIES, FAMILIES, save_tiny_base

TEXTS = ["hi", "My house is too hot. Open the windows.", "You are an idiot and I hate you, go away now!", "ok ok"]


def _load(family, tmp_path_factory):
    base = save_tiny_base(tmp_path_factory.mktemp(family), family, num_labels=1)
    model, tok = load_model_and_tokenizer(str(base), {0: "reward"})
    return family, model.eval(), tok


@pytest.fixture(scope="module", params=FAMILIES)
def family_model(request, tmp_path_factory):
    return _load(request.param, tmp_path_factory)


@pytest.fixture(scope="module", params=DECODER_FAMILIES)
def decoder_model(request, tmp_path_factory):
    return _load(request.param, tmp_path_factory)


def test_decoders_get_a_pad_token(family_model):
    family, model, tok = family_model
    assert tok.pad_token is not None
    assert model.config.pad_token_id == tok.pad_token_id
    if family in DECODER_FAMILIES:
        assert tok.pad_token == tok.eos_token  # the tiny decoders ship without one, like GPT-2


def test_right_padded_batch_equals_each_text_alone(family_model):
    _check_padding(family_model, "right")


def test_left_padded_decoder_batch_equals_each_text_alone(decoder_model):
    _check_padding(decoder_model, "left")


def _check_padding(family_model, side):
    """The reward is read at the last real token whatever the padding side.

    rewardserve pads on the right everywhere; left padding is checked for decoders (with
    position ids that skip the pads) because other RLHF stacks send left-padded batches.
    Encoders with absolute positions are never left-padded.
    """
    _, model, tok = family_model
    tok.padding_side = side
    try:
        solo = np.concatenate([score_texts(model, tok, [t], 64) for t in TEXTS])
        with torch.inference_mode():
            enc = tok(TEXTS, padding=True, return_tensors="pt")
            assert (enc["attention_mask"] == 0).any()  # there really is padding
            if side == "left":
                enc["position_ids"] = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
            batched = model(**enc).logits.numpy()
    finally:
        tok.padding_side = "right"
    np.testing.assert_allclose(batched, solo, atol=1e-5)
