"""Domain types <-> protobuf, item parsing and validation messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rewardserve.service import domain
from rewardserve.service.client import convert as client_convert
from rewardserve.service.edge import convert as edge_convert
from rewardserve.service.errors import InvalidArgument

from rewardserve.enums import Truncation
from rewardserve.formatting import ChatItem, Message, PairItem, TextItem

ITEMS = (TextItem("t"), PairItem("p", "r"), ChatItem((Message("user", "u"), Message("assistant", "a"))))


def test_score_request_round_trip():
    req = domain.ScoreRequest(ITEMS, domain.ScoreOptions("m", Truncation.error, True), "id-1")
    assert edge_convert.score_request_from_pb(client_convert.score_request_to_pb(req), max_items=10) == req


def test_item_from_obj_forms_and_errors():
    assert domain.item_from_obj({"prompt": "p", "response": "r"}) == PairItem("p", "r")
    assert domain.item_from_obj(("p", "r")) == PairItem("p", "r")
    assert domain.item_from_obj([{"role": "user", "content": "u"}]) == ChatItem((Message("user", "u"),))
    with pytest.raises(InvalidArgument, match="line 3: needs exactly one of"):
        domain.item_from_obj({"text": "a", "response": "b"}, "line 3")
    with pytest.raises(InvalidArgument, match=r"items\[0\].text: must be a string"):
        domain.item_from_obj({"text": 5}, "items[0]")


def test_compare_request_validation():
    with pytest.raises(InvalidArgument, match="pairs: empty"):
        domain.CompareRequest("p", ()).validate(10)
    with pytest.raises(InvalidArgument, match="pairs: 6 pairs, at most 5"):
        domain.CompareRequest("p", (("a", "b"),) * 6).validate(10)


@given(st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=4), st.integers(0, 10_000),
       st.booleans(), st.one_of(st.none(), st.tuples(st.floats(-10, 10, width=32), st.floats(0.125, 10, width=32))))
def test_results_and_model_info_round_trip(logits, n, truncated, norm):
    s = domain.ItemScore(tuple(logits), tuple(logits), logits[0], n, truncated)
    assert client_convert.score_result_from_pb(edge_convert.score_result_to_pb(domain.ScoreResult((s,), "m", "r"))).scores == (s,)
    info = domain.ModelInfo("m", "pairwise", ("reward",), "reward", 0, 64, "left", "plain", "fp32", "CPU", True,
                           norm, "bert")
    assert client_convert.model_info_from_pb(edge_convert.model_info_to_pb(info)) == info


def test_model_info_agreement_round_trip_and_absence():
    from rewardserve.agreement_summary import AgreementSummary

    summary = AgreementSummary(target="vote_distribution", units=120, judgements=400, pairwise_agreement=0.75,
                               krippendorff_alpha=None, mean_majority_share=0.875, min_agreement=0.75,
                               dropped_share=0.25, outlier_labellers=("ann-3",))
    info = domain.ModelInfo("m", "classifier", ("toxic", "ok"), "ok", 1, 64, "right", "plain", "int8", "CPU", True,
                            None, "bert", agreement=summary)
    msg = edge_convert.model_info_to_pb(info)
    assert msg.HasField("agreement") and not msg.agreement.HasField("krippendorff_alpha")  # undefined stays unset
    back = client_convert.model_info_from_pb(msg)
    assert back.agreement == summary  # every value here is exact in float32
    plain = edge_convert.model_info_to_pb(domain.ModelInfo(*[getattr(info, f) for f in (
        "name", "kind", "labels", "reward_label", "reward_index", "max_length", "truncation_side", "text_format",
        "precision", "execution_provider", "parity_passed", "normalization", "model_type")]))
    assert not plain.HasField("agreement") and client_convert.model_info_from_pb(plain).agreement is None
