"""Vote columns for classifiers: parsing and its errors, skip_invalid, and the vote-distribution metrics."""

from __future__ import annotations

import numpy as np
import pytest
from rewardserve.training.data import DataError, load_classification, parse_label_votes
from rewardserve.training.vote_metrics import binned_calibration_error, vote_metrics

VOTES = "hate_speech=toxic,offensive_language=toxic,neither=non_toxic"
MAP = {"0": "toxic", "1": "toxic", "2": "non_toxic"}
HEADER = "count,hate_speech,offensive_language,neither,class,tweet"


def _csv(tmp_path, lines, header=HEADER):
    p = tmp_path / "votes.csv"
    p.write_text("\n".join([header, *lines]) + "\n")
    return p


def _load(path, **kw):
    return load_classification(path, "tweet", "class", MAP, label_votes=parse_label_votes(VOTES), **kw)


def test_votes_are_summed_per_class_and_normalised(tmp_path):
    p = _csv(tmp_path, ["3,1,1,1,1,a mixed one", "3,0,0,3,2,a kind one", "6,0,4,2,1,mostly rude"])
    rows, names, _ = _load(p)
    assert names == ["toxic", "non_toxic"]
    assert [r.votes for r in rows] == [(2, 1), (0, 3), (4, 2)]
    assert rows[0].soft == pytest.approx((2 / 3, 1 / 3)) and rows[1].soft == (0.0, 1.0)
    assert [r.label for r in rows] == [0, 1, 0]  # the label column (majority class), mapped


def test_without_a_label_column_the_majority_vote_is_the_label(tmp_path):
    p = _csv(tmp_path, ["0,3,ok then", "2,1,rude", "1,1,tied"], header="offensive_language,neither,tweet")
    rows, names, report = load_classification(p, "tweet", "class",
                                               label_votes={"offensive_language": "toxic", "neither": "non_toxic"})
    assert names == ["toxic", "non_toxic"] and [r.label for r in rows] == [1, 0, 0]
    assert sum(report.notes.values()) == 1  # the tie is counted


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("3,0,-1,3,2,negative", "vote column 'offensive_language' must be a non-negative integer, got '-1'"),
        ("3,0,1.5,2,2,fraction", "vote column 'offensive_language' must be a non-negative integer, got '1.5'"),
        ("3,0,two,2,2,word", "vote column 'offensive_language' must be a non-negative integer, got 'two'"),
        ("0,0,0,0,2,nobody voted", "sum to zero (no votes)"),
    ],
)
def test_bad_votes_name_file_line_and_column(tmp_path, line, message):
    p = _csv(tmp_path, ["3,0,0,3,2,fine", line])
    with pytest.raises(DataError) as e:
        _load(p)
    assert f"{p}:3: " in str(e.value) and message in str(e.value)


def test_missing_vote_column_and_jsonl_types(tmp_path):
    p = _csv(tmp_path, ["3,0,3,1,x"], header="count,hate_speech,offensive_language,class,tweet")
    with pytest.raises(DataError, match=rf"{p}:2: missing vote column 'neither'"):
        _load(p)
    j = tmp_path / "v.jsonl"
    j.write_text('{"tweet": "a", "class": "1", "hate_speech": 0, "offensive_language": 2, "neither": 1}\n'
                 '{"tweet": "b", "class": "1", "hate_speech": true, "offensive_language": 2, "neither": 1}\n')
    with pytest.raises(DataError, match=rf"{j}:2: vote column 'hate_speech' must be a non-negative integer, got True"):
        _load(j)


def test_vote_spec_errors():
    with pytest.raises(DataError, match="label votes: expected COLUMN=LABEL"):
        parse_label_votes("hate_speech:toxic")
    with pytest.raises(DataError, match="'neither' is given twice"):
        parse_label_votes("neither=a,neither=b")


def test_votes_must_name_the_label_maps_classes(tmp_path):
    p = _csv(tmp_path, ["3,0,0,3,2,fine"])
    with pytest.raises(DataError, match="label votes name the classes .* the label map .* must be the same"):
        load_classification(p, "tweet", "class", MAP, label_votes={"neither": "clean", "hate_speech": "toxic"})


def test_skip_invalid_skips_and_counts_bad_classifier_rows(tmp_path):
    # Issue 14 item 10: skip_invalid used to be ignored for classifiers (the first bad row stopped the run).
    p = _csv(tmp_path, ["3,0,0,3,2,fine", "3,0,-1,3,2,negative", "3,0,0,3,7,unknown class", "3,3,0,0,0,", "3,0,3,0,1,rude"])
    with pytest.raises(DataError):
        _load(p)
    rows, _, report = _load(p, skip_invalid=True)
    assert [r.text for r in rows] == ["fine", "rude"]
    assert report.records == 5 and report.skipped_total == 3
    assert report.to_dict()["skip_reasons"] == {
        "vote column 'offensive_language' must be a non-negative integer, got '-1'": 1,
        "field 'class': unknown label '7' (known: ['0', '1', '2'])": 1,
        "field 'tweet' is empty": 1,
    }


def test_ece_against_vote_shares_by_hand():
    # 15 equal-width bins: 0.10 and 0.12 share bin 1, 0.50 bin 7, 0.95 bin 14.
    p = np.array([0.10, 0.12, 0.50, 0.95])
    s = np.array([0.0, 1 / 3, 1 / 3, 1.0])
    # bin 1: |0.11 - 1/6| * 2/4; bin 7: |0.5 - 1/3| * 1/4; bin 14: |0.95 - 1| * 1/4
    expected = abs(0.11 - 1 / 6) / 2 + abs(0.5 - 1 / 3) / 4 + 0.05 / 4
    assert binned_calibration_error(p, s) == pytest.approx(expected)
    assert binned_calibration_error(np.array([1.0]), np.array([1.0])) == 0.0  # 1.0 falls in the last bin


def test_vote_metrics_by_hand():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    shares = np.array([[1.0, 0.0], [0.0, 1.0], [2 / 3, 1 / 3]])
    m = vote_metrics(probs, shares, ["toxic", "non_toxic"])
    # Brier: sum over classes per item, then mean: (0.02 + 0.08 + 2 * (0.6 - 2/3)^2) / 3
    assert m["vote_brier"] == pytest.approx((0.02 + 0.08 + 2 * (0.6 - 2 / 3) ** 2) / 3)
    assert m["vote_correlation"]["toxic"] == pytest.approx(np.corrcoef([0.9, 0.2, 0.6], [1, 0, 2 / 3])[0, 1])
    assert m["vote_correlation"]["toxic"] == pytest.approx(m["vote_correlation"]["non_toxic"])
    # Each item alone in its bin: ECE = mean |P - share| = (0.1 + 0.2 + 1/15) / 3, the same for both classes.
    assert m["vote_ece"] == pytest.approx((0.1 + 0.2 + abs(0.6 - 2 / 3)) / 3)
    assert m["vote_ece_per_class"]["toxic"] == pytest.approx(m["vote_ece_per_class"]["non_toxic"])
    assert m["vote_ece_bins"] == 15
