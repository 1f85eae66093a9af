"""Domain types <-> protobuf, item parsing and validation messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rewardserve.service import types
from rewardserve.service.errors import InvalidArgument

from rewardserve.enums import Truncation
from rewardserve.formatting import ChatItem, Message, PairItem, TextItem

ITEMS = (TextItem("t"), PairItem("p", "r"), ChatItem((Message("user", "u"), Message("assistant", "a"))))


def test_score_request_round_trip():
    req = types.ScoreRequest(ITEMS, types.ScoreOptions("m", Truncation.error, True), "id-1")
    assert types.score_request_from_pb(types.score_request_to_pb(req), max_items=10) == req


def test_item_from_obj_forms_and_errors():
    assert types.item_from_obj({"prompt": "p", "response": "r"}) == PairItem("p", "r")
    assert types.item_from_obj(("p", "r")) == PairItem("p", "r")
    assert types.item_from_obj([{"role": "user", "content": "u"}]) == ChatItem((Message("user", "u"),))
    for obj in ITEMS:
        assert types.item_from_obj(types.item_to_obj(obj)) == obj
    with pytest.raises(InvalidArgument, match="line 3: needs exactly one of"):
        types.item_from_obj({"text": "a", "response": "b"}, "line 3")
    with pytest.raises(InvalidArgument, match=r"items\[0\].text: must be a string"):
        types.item_from_obj({"text": 5}, "items[0]")


def test_compare_request_validation():
    with pytest.raises(InvalidArgument, match="pairs: empty"):
        types.CompareRequest("p", ()).validate(10)
    with pytest.raises(InvalidArgument, match="pairs: 6 pairs, at most 5"):
        types.CompareRequest("p", (("a", "b"),) * 6).validate(10)


@given(st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=4), st.integers(0, 10_000),
       st.booleans(), st.one_of(st.none(), st.tuples(st.floats(-10, 10, width=32), st.floats(0.125, 10, width=32))))
def test_results_and_model_info_round_trip(logits, n, truncated, norm):
    s = types.ItemScore(tuple(logits), tuple(logits), logits[0], n, truncated)
    assert types.score_result_from_pb(types.score_result_to_pb(types.ScoreResult((s,), "m", "r"))).scores == (s,)
    info = types.ModelInfo("m", "pairwise", ("reward",), "reward", 0, 64, "left", "plain", "fp32", "CPU", True,
                           norm, "bert")
    assert types.model_info_from_pb(types.model_info_to_pb(info)) == info
