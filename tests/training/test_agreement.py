"""Agreement statistics against hand-computed values, and ``rewardserve data stats`` on fixtures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rewardserve.training.agreement import (
    kendalls_w,
    krippendorff_alpha,
    labeller_disagreement,
    outlier_labellers,
    preference_agreement,
    summarize_units,
    unit_agreement,
)
from rewardserve.training.judgements import JudgedItem, Judgement

from rewardserve.cli import main

from .conftest import write_jsonl


def test_pairwise_agreement_per_unit():
    assert unit_agreement(np.array([3, 0])) == 1.0
    assert unit_agreement(np.array([2, 1])) == pytest.approx(1 / 3)  # 1 agreeing pair of 3
    assert unit_agreement(np.array([1, 1])) == 0.0
    assert unit_agreement(np.array([2, 1, 1])) == pytest.approx(2 / 12)
    assert unit_agreement(np.array([1, 0])) is None


def test_krippendorff_alpha_nominal_by_hand():
    # Coincidences: o00 = 3 + 1, o11 = 3, o01 = o10 = 1; n0 = 5, n1 = 4, n = 9.
    # D_o = 2/9, D_e = 2 * 5 * 4 / (9 * 8) = 5/9, alpha = 1 - (2/9) / (5/9) = 0.6.
    assert krippendorff_alpha(np.array([[3, 0], [0, 3], [2, 1]])) == pytest.approx(0.6)
    assert krippendorff_alpha(np.array([[3, 0], [2, 0]])) is None  # one value only: alpha undefined


def test_kendalls_w_by_hand():
    assert kendalls_w(np.array([[1, 2, 3]] * 3)) == pytest.approx(1.0)
    assert kendalls_w(np.array([[1, 2, 3], [3, 1, 2], [2, 3, 1]])) == pytest.approx(0.0)
    # totals 2, 5, 5 around 4: S = 6; W = 12 * 6 / (2^2 * (27 - 3)) = 0.75
    assert kendalls_w(np.array([[1, 2, 3], [1, 3, 2]])) == pytest.approx(0.75)
    # midranks (1.5, 1.5, 3) and (1, 2, 3): S = 6.5; tie term 2^3 - 2 = 6; W = 78 / (96 - 12)
    assert kendalls_w(np.array([[1, 1, 2], [1, 2, 3]])) == pytest.approx(78 / 84)


def test_summary_and_min_agreement_filter():
    s = summarize_units(np.array([[3, 0], [2, 1], [1, 1], [0, 4]]), min_agreement=0.75)
    assert s["pairwise_agreement"] == pytest.approx((1 + 1 / 3 + 0 + 1) / 4)
    assert s["mean_majority_share"] == pytest.approx((1 + 2 / 3 + 0.5 + 1) / 4)
    assert s["dropped_share"] == 0.5 and s["unanimous_share"] == 0.5
    assert s["dropped_share_at"]["1.00"] == 0.5 and s["dropped_share_at"]["0.60"] == 0.25


def _pairs_item(k, votes_for_first):
    # Five labellers L0..L4 judge one pair; the first `votes_for_first` prefer text 0.
    return JudgedItem((f"a{k}", f"b{k}"), f"f:{k}", 0.0,
                      [Judgement(f"L{i}", (1, 2) if i < votes_for_first else (2, 1)) for i in range(5)])


def test_an_outlier_labeller_is_flagged():
    items = [_pairs_item(k, 4) for k in range(6)]  # L4 alone prefers text 1, every time
    per = labeller_disagreement(items)
    assert per["L4"] == {"judgements": 6, "disagreement": 1.0}
    assert per["L0"] == {"judgements": 6, "disagreement": 0.0}
    assert outlier_labellers(per) == ["L4"]
    # An honest 3-2 split everywhere: everyone disagrees with the others' majority now and then, nobody stands out.
    split = [_pairs_item(k, 3) for k in range(6)]
    assert outlier_labellers(labeller_disagreement(split)) == []


def test_preference_agreement_ranking_items():
    item = JudgedItem(("x", "y", "z"), "f:1", 0.0, [Judgement("a", (1, 2, 3)), Judgement("b", (1, 3, 2))])
    s = preference_agreement([item], min_agreement=0.75)
    assert s["kendalls_w"] == pytest.approx(0.75) and s["kendalls_w_items"] == 1
    # Pairs: (x,y) 2-0, (x,z) 2-0, (y,z) 1-1 -> one of three below 0.75.
    assert s["dropped_share"] == pytest.approx(1 / 3) and s["units"] == 3
    assert s["labellers"]["a"]["judgements"] == 3 and s["outlier_labellers"] == []


def test_data_stats_on_rankings(tmp_path, capsys):
    comps = [" one", " two", " three"]
    rows = [{"prompt": f"P{k}", "completions": comps, "rankings": [
        {"labeller": "a", "ranks": [1, 2, 3]}, {"labeller": "b", "ranks": [1, 2, 3]},
        {"labeller": "c", "ranks": [1, 2, 3]}, {"labeller": "odd", "ranks": [3, 2, 1]}]} for k in range(3)]
    data = write_jsonl(tmp_path / "r.jsonl", rows)
    png = tmp_path / "hist.png"
    assert main(["data", "stats", str(data), "--json", "--plot", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "preference_judgements" and out["items"] == 3 and out["units"] == 9
    assert out["judgements"] == 36 and out["outlier_labellers"] == ["odd"]
    # Per item W: totals 6, 8, 10 around 8 -> S = 8; W = 12 * 8 / (16 * 24) = 0.25
    assert out["kendalls_w"] == pytest.approx(0.25)
    assert out["pairwise_agreement"] == pytest.approx(0.5)  # 3 of 4 agree on every pair: 3 / 6 pairs agree
    assert out["dropped_share"] == 0.0  # majority share 0.75 everywhere, not below 0.75
    assert out["consensus"]["borda_agreement"] == 1.0 and out["consensus"]["items"][0]["ranks"] == [1, 2, 3]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_data_stats_on_class_votes(tmp_path, capsys):
    p = tmp_path / "v.csv"
    p.write_text("hate_speech,offensive_language,neither,tweet\n0,3,0,a\n1,1,1,b\n0,0,3,c\n")
    votes = "hate_speech=toxic,offensive_language=toxic,neither=non_toxic"
    assert main(["data", "stats", str(p), "--label-votes", votes, "--text-column", "tweet"]) == 0
    text = capsys.readouterr().out
    assert "units 3 (3 with 2+ judgements), judgements 9" in text
    # units [3,0], [2,1], [0,3]: agreement (1 + 1/3 + 1) / 3; alpha 1 - (2/9) / (2 * 5 * 4 / 72) = 0.6
    assert "pairwise agreement 0.778" in text and "Krippendorff's alpha (nominal) 0.600" in text
    assert "min-agreement 0.75 would drop 33.3% of units" in text


def test_data_stats_errors(tmp_path, capsys):
    plain = write_jsonl(tmp_path / "plain.jsonl", [{"prompt": "p", "chosen": " a", "rejected": " b"}])
    assert main(["data", "stats", str(plain)]) == 2
    assert "no records with several judgements" in capsys.readouterr().err
    p = tmp_path / "v.csv"
    p.write_text("neither,tweet\n-1,a\n")
    assert main(["data", "stats", str(p), "--label-votes", "neither=ok", "--text-column", "tweet"]) == 2
    assert f"{p}:2: vote column 'neither' must be a non-negative integer" in capsys.readouterr().err
