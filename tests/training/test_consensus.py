"""Several labellers' judgements: the three formats, their errors, and consensus with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rewardserve.training.consensus import (
    bradley_terry_scores,
    consensus_groups,
    consensus_ranking,
    pair_votes,
)
from rewardserve.training.data import DataError, TextFormatter, flatten_pairs, load_preferences
from rewardserve.training.judgements import JudgedItem, Judgement
from rewardserve.training.preferences import load_judged_items
from rewardserve.training.records import LoadReport

from rewardserve.bundle import HH_CHAT_TEMPLATE

from .conftest import write_jsonl

FMT = TextFormatter("{prompt}{response}", HH_CHAT_TEMPLATE)
COMPS = [" Open the windows.", " Buy a fan.", " Burn it."]


def _item(*ranks, ids=True):
    n = len(ranks[0])
    return JudgedItem(tuple(f"t{i}" for i in range(n)), "f:1", 0.0,
                      [Judgement(f"L{k}" if ids else None, tuple(r)) for k, r in enumerate(ranks)])


def _groups(item, mode):
    report = LoadReport()
    return consensus_groups([item], mode, report), report


# ----------------------------------------------------------------------------- consensus
def test_unanimous():
    item = _item((1, 2, 3), (1, 2, 3), (1, 2, 3))
    (g,), _ = _groups(item, "hard")
    assert g.pairs == ((0, 1), (0, 2), (1, 2)) and g.targets == (1.0,) * 3 and g.weights == (1.0,) * 3
    (s,), _ = _groups(item, "soft")
    assert s.pairs == g.pairs and s.targets == (1.0,) * 3
    c = consensus_ranking(item)
    assert c.ranks == (1, 2, 3) and c.borda_agrees and all(math.isfinite(x) for x in c.scores)


def test_split_two_to_one():
    item = _item((1, 2), (1, 2), (2, 1))
    assert pair_votes(item) == [(0, 1, 2, 1, 0)]
    (h,), _ = _groups(item, "hard")
    (w,), _ = _groups(item, "weighted")
    (s,), _ = _groups(item, "soft")
    assert h.pairs == w.pairs == s.pairs == ((0, 1),)
    assert h.targets == (1.0,) and h.weights == (1.0,)
    assert w.targets == (1.0,) and w.weights == pytest.approx((2 / 3,))
    assert s.targets == pytest.approx((2 / 3,)) and s.weights == (1.0,)


def test_minority_side_first_is_reoriented():
    (g,), _ = _groups(_item((2, 1), (2, 1), (1, 2)), "soft")
    assert g.pairs == ((1, 0),) and g.targets == pytest.approx((2 / 3,))


def test_fifty_fifty_dropped_and_counted_unless_soft():
    item = _item((1, 2), (2, 1))
    groups, report = _groups(item, "hard")
    assert groups == [] and report.skipped["50/50 splits (no majority)"] == 1
    groups, report = _groups(item, "weighted")
    assert groups == [] and report.skipped["50/50 splits (no majority)"] == 1
    (s,), report = _groups(item, "soft")
    assert s.targets == (0.5,) and not report.skipped
    assert consensus_ranking(item).ranks == (1, 1)


def test_ties_count_for_neither_side():
    # Labeller 0 ties texts 0 and 1; the other two prefer 0: p = 2/2 for the pair (0, 1).
    item = _item((1, 1, 2), (1, 2, 3), (1, 2, 3))
    assert pair_votes(item)[0] == (0, 1, 2, 0, 1)
    (g,), _ = _groups(item, "soft")
    assert dict(zip(g.pairs, g.targets, strict=True))[(0, 1)] == 1.0
    everyone_ties = _item((1, 1), (1, 1))
    groups, report = _groups(everyone_ties, "soft")
    assert groups == [] and report.skipped["pairs every labeller tied (no preference)"] == 1


def test_cyclic_preferences_give_a_three_way_tie():
    # A > B > C, B > C > A, C > A > B: every pair is 2-1 one way round the cycle.
    item = _item((1, 2, 3), (3, 1, 2), (2, 3, 1))
    assert [v[2:4] for v in pair_votes(item)] == [(2, 1), (1, 2), (2, 1)]
    c = consensus_ranking(item)
    assert c.ranks == (1, 1, 1) and c.borda_ranks == (1, 1, 1) and c.borda_agrees
    assert np.allclose(c.scores, 0)


def test_bradley_terry_two_texts_closed_form_with_the_prior():
    # n wins to none and 0.5 pseudo-votes each way: s0 - s1 = log((n + 0.5) / 0.5), finite.
    for n in (1, 3, 10):
        s = bradley_terry_scores(np.array([[0.0, n], [0.0, 0.0]]))
        assert s[0] - s[1] == pytest.approx(math.log((n + 0.5) / 0.5), rel=1e-6)
        assert s.sum() == pytest.approx(0, abs=1e-9)
    # 3 wins to 1 and a stronger prior (4 pseudo-votes): log((3 + 2) / (1 + 2)).
    s = bradley_terry_scores(np.array([[0.0, 3.0], [1.0, 0.0]]), prior=4)
    assert s[0] - s[1] == pytest.approx(math.log(5 / 3), rel=1e-6)
    with pytest.raises(ValueError, match="prior must be > 0"):
        bradley_terry_scores(np.zeros((2, 2)), prior=0)


def test_bradley_terry_orders_a_consistent_majority_and_borda_agrees():
    item = _item((1, 2, 3), (1, 3, 2), (2, 1, 3), (1, 2, 3))
    c = consensus_ranking(item)
    assert c.ranks == (1, 2, 3) and c.borda == (7.0, 4.0, 1.0) and c.borda_agrees


# ---------------------------------------------------------------------------- the formats
RANKINGS = {"prompt": "My house is too hot.", "completions": COMPS,
            "rankings": [{"labeller": "a", "ranks": [1, 2, 3]}, {"labeller": "b", "ranks": [1, 3, 2]},
                         {"labeller": 7, "ranks": [2, 1, 3]}]}


def test_rankings_format(tmp_path):
    p = write_jsonl(tmp_path / "r.jsonl", [RANKINGS])
    (item,), _ = load_judged_items(p, FMT)
    assert item.texts[0] == "My house is too hot. Open the windows." and item.has_labeller_ids
    assert [j.labeller for j in item.judgements] == ["a", "b", "7"]
    groups, report = load_preferences(p, FMT, consensus="hard")
    (g,) = groups
    # (0,1): 2-1 for 0; (0,2): 3-0 for 0; (1,2): 2-1 for 1.
    assert set(g.pairs) == {(0, 1), (0, 2), (1, 2)} and report.judged_items


def test_pair_votes_and_per_labeller_lines_merge(tmp_path):
    rows = [
        {"prompt": "Q?", "chosen": " good", "rejected": " bad", "votes": {"chosen": 2, "rejected": 1}},
        {"prompt": "Q2?", "chosen": " yes", "rejected": " no", "labeller": "a"},
        {"prompt": "Q3?", "chosen": " x", "rejected": " y", "labeller": "a"},
        {"prompt": "Q2?", "chosen": " no", "rejected": " yes", "labeller": "b"},  # b preferred the other one
        {"prompt": "Q2?", "chosen": " yes", "rejected": " no", "labeller": "c"},
    ]
    p = write_jsonl(tmp_path / "p.jsonl", rows)
    items, _ = load_judged_items(p, FMT)
    assert [len(i.judgements) for i in items] == [3, 3, 1]
    assert not items[0].has_labeller_ids and items[1].has_labeller_ids
    assert pair_votes(items[1]) == [(0, 1, 2, 1, 0)]  # "Q2? yes" over "Q2? no", 2 to 1
    groups, _ = load_preferences(p, FMT, consensus="soft")
    assert [g.targets for g in groups] == [pytest.approx((2 / 3,)), pytest.approx((2 / 3,)), (1.0,)]


def test_per_labeller_ranking_lines_in_any_order(tmp_path):
    rows = [{"prompt": "P", "completions": COMPS, "ranks": [1, 2, 3], "labeller": "a"},
            {"prompt": "P", "completions": COMPS[::-1], "ranks": [3, 2, 1], "labeller": "b"}]
    (item,), _ = load_judged_items(write_jsonl(tmp_path / "l.jsonl", rows), FMT)
    assert [j.ranks for j in item.judgements] == [(1, 2, 3), (1, 2, 3)]


def test_margin_with_hard_weighted_and_soft(tmp_path):
    rec = {"prompt": "Q?", "chosen": " good", "rejected": " bad", "votes": {"chosen": 3, "rejected": 1}, "margin": 0.5}
    p = write_jsonl(tmp_path / "m.jsonl", [rec])
    (h,), _ = load_preferences(p, FMT, consensus="hard")
    (w,), _ = load_preferences(p, FMT, consensus="weighted")
    assert h.margins == w.margins == (0.5,) and w.weights == (0.75,)
    with pytest.raises(DataError, match=rf"{p}:1: field 'margin' cannot be combined with --consensus soft"):
        load_preferences(p, FMT, consensus="soft")


def test_ranking_mode_keeps_or_splits_an_items_pairs(tmp_path):
    p = write_jsonl(tmp_path / "r.jsonl", [RANKINGS])
    (g,), _ = load_preferences(p, FMT, consensus="weighted")  # per_prompt: one group, three pairs
    flat = flatten_pairs([g])  # pairs mode: one group per pair, targets and weights kept
    assert len(g.pairs) == 3 and [f.pairs for f in flat] == [((0, 1),)] * 3
    assert sorted(f.weights[0] for f in flat) == pytest.approx(sorted(g.weights))
    assert {f.texts for f in flat} == {(g.texts[i], g.texts[j]) for i, j in g.pairs}


@pytest.mark.parametrize(
    ("rec", "message"),
    [
        ({**RANKINGS, "rankings": []}, "field 'rankings' must be a non-empty list"),
        ({**RANKINGS, "rankings": [{"ranks": [1, 2, 3]}]}, "field 'rankings[0].labeller' is missing"),
        ({**RANKINGS, "rankings": [{"labeller": "a", "ranks": [1, 2]}]}, "field 'rankings[0].ranks' must list one rank"),
        ({**RANKINGS, "rankings": [{"labeller": "a", "ranks": [1, 0, 2]}]}, "field 'rankings[0].ranks[1]' must be"),
        ({**RANKINGS, "rankings": [{"labeller": "a", "ranks": [1, 2, 3]}] * 2}, "'a' ranks these completions twice"),
        ({"chosen": "a", "rejected": "b", "votes": {"chosen": -1, "rejected": 2}}, "field 'votes.chosen' must be"),
        ({"chosen": "a", "rejected": "b", "votes": {"chosen": 0, "rejected": 0}}, "field 'votes' holds no votes"),
        ({"chosen": "a", "rejected": "b", "votes": {"up": 1}}, "field 'votes' must be"),
        ({"chosen": "a", "rejected": "b", "labeller": ""}, "field 'labeller' must be a non-empty"),
        ({"chosen": "a", "rejected": "b", "labeller": "x", "votes": {"chosen": 1, "rejected": 0}}, "not both"),
    ],
)
def test_bad_judgements_name_file_line_and_field(tmp_path, rec, message):
    p = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "ok", "chosen": " a", "rejected": " b"}, rec])
    with pytest.raises(DataError) as e:
        load_preferences(p, FMT)
    assert f"{p}:2: " in str(e.value) and message in str(e.value)


def test_a_labeller_judging_the_same_pair_twice_is_refused(tmp_path):
    rows = [{"prompt": "Q", "chosen": " a", "rejected": " b", "labeller": "x"},
            {"prompt": "Q", "chosen": " b", "rejected": " a", "labeller": "x"}]
    p = write_jsonl(tmp_path / "twice.jsonl", rows)
    with pytest.raises(DataError, match=rf"{p}:2: labeller 'x' already judged these texts \(first at {p}:1\)"):
        load_preferences(p, FMT)
    groups, report = load_preferences(p, FMT, skip_invalid=True)
    assert len(groups) == 1 and report.skipped_total == 1
