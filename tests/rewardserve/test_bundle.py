"""The reward.json contract: round trip and validation that names the bad field."""

from __future__ import annotations

import json

import pytest

from rewardserve.bundle import AgreementSummary, BundleError, Normalization, RewardSpec
from rewardserve.enums import ModelKind, TextFormat, Truncation


def _spec(**kw):
    base = {"kind": ModelKind.classifier, "id2label": {0: "toxic", 1: "non_toxic"}, "reward_label": "non_toxic",
            "max_length": 128}
    return RewardSpec(**{**base, **kw})


def test_round_trip(tmp_path):
    spec = _spec(normalization=Normalization(0.5, 2.0), metrics={"eval": {"accuracy": 0.9}},
                 truncation_side=Truncation.right, text_format=TextFormat.plain, data_fingerprint="abc")
    spec.save(tmp_path)
    loaded = RewardSpec.load(tmp_path)
    assert loaded == spec
    assert loaded.reward_index == 1 and loaded.labels == ["toxic", "non_toxic"]
    assert loaded.normalize(4.5) == 2.0
    assert json.loads((tmp_path / "reward.json").read_text())["id2label"] == {"0": "toxic", "1": "non_toxic"}


def test_pairwise_has_one_logit():
    spec = RewardSpec(kind=ModelKind.pairwise, id2label={0: "reward"}, reward_label="reward", max_length=64)
    assert spec.reward_index == 0 and spec.normalize(3.0) == 3.0
    with pytest.raises(BundleError, match="field 'id2label': a pairwise model has exactly one logit"):
        RewardSpec(kind=ModelKind.pairwise, id2label={0: "a", 1: "b"}, reward_label="a", max_length=64)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "regression"}, "field 'kind': must be one of ['pairwise', 'classifier']"),
        ({"reward_label": "nice"}, "field 'reward_label': 'nice' is not one of the labels"),
        ({"id2label": {"0": "a", "2": "b"}}, "field 'id2label': keys must be 0..1"),
        ({"id2label": {"0": "a", "1": "a"}}, "field 'id2label': label names must be unique"),
        ({"max_length": 0}, "field 'max_length': must be an integer >= 2"),
        ({"truncation_side": "middle"}, "field 'truncation_side': must be one of"),
        ({"truncation_side": "error"}, "field 'truncation_side': must be 'left' or 'right'"),
        ({"text_format": "xml"}, "field 'text_format'"),
        ({"normalization": {"mean": 0.0, "std": 0.0}}, "field 'normalization': needs a finite mean and a std > 0"),
        ({"normalization": {"mean": 0.0}}, "field 'normalization': must be"),
        ({"schema_version": 9}, "field 'schema_version': is 9, newer than this rewardserve reads (2)"),
        ({"schema_version": 0}, "field 'schema_version': must be an integer from 1 to 2"),
        ({"agreement": {"target": "majority", "units": 3, "judgements": 9}},
         "field 'agreement': needs schema_version >= 2, the file says 1"),
        ({"schema_version": 2, "agreement": {"target": "vote", "units": 3, "judgements": 9}},
         "field 'agreement.target': must be one of"),
        ({"schema_version": 2, "agreement": {"target": "soft", "units": 3, "judgements": 9, "dropped_share": 2}},
         "field 'agreement.dropped_share': must be a number in [0, 1]"),
        ({"schema_version": 2, "agreement": {"target": "soft", "units": 3}}, "field 'agreement.judgements': is required"),
        ({"prompt_template": "{prompt}"}, "field 'prompt_template': must contain '{response}'"),
        ({"colour": "red"}, "field 'colour': unknown field"),
    ],
)
def test_invalid_fields_are_named(tmp_path, change, message):
    d = {**_spec().to_dict(), **change}
    (tmp_path / "reward.json").write_text(json.dumps(d))
    with pytest.raises(BundleError) as e:
        RewardSpec.load(tmp_path)
    assert str(tmp_path / "reward.json") in str(e.value) and message in str(e.value)


def test_missing_field_and_bad_json(tmp_path):
    d = _spec().to_dict()
    del d["reward_label"]
    (tmp_path / "reward.json").write_text(json.dumps(d))
    with pytest.raises(BundleError, match="field 'reward_label': is required"):
        RewardSpec.load(tmp_path)
    (tmp_path / "reward.json").write_text("{oops")
    with pytest.raises(BundleError, match="invalid JSON at line 1"):
        RewardSpec.load(tmp_path)
    with pytest.raises(BundleError, match="not found"):
        RewardSpec.load(tmp_path / "nowhere")


# A reward.json as rewardserve wrote it before the agreement summary (schema version 1).
OLD_REWARD_JSON = {
    "schema_version": 1, "kind": "classifier", "id2label": {"0": "toxic", "1": "non_toxic"},
    "reward_label": "non_toxic", "max_length": 64, "truncation_side": "right", "text_format": "plain",
    "prompt_template": "{prompt}{response}", "chat_template": "{{ messages }}", "normalization": None,
    "base_model": "", "model_type": "bert", "metrics": {}, "data_fingerprint": "abc",
}


def test_old_bundle_without_agreement_loads_and_stays_version_1(tmp_path):
    (tmp_path / "reward.json").write_text(json.dumps(OLD_REWARD_JSON))
    spec = RewardSpec.load(tmp_path)
    assert spec.agreement is None and spec.schema_version == 1
    spec.save(tmp_path / "again")  # re-written without a summary: still readable by version-1 readers
    assert json.loads((tmp_path / "again" / "reward.json").read_text()) == OLD_REWARD_JSON


def test_agreement_round_trip_writes_version_2(tmp_path):
    summary = AgreementSummary(target="soft", units=10, judgements=30, pairwise_agreement=0.8,
                               krippendorff_alpha=0.41, kendalls_w=0.7, mean_majority_share=0.9,
                               min_agreement=0.75, dropped_share=0.2, outlier_labellers=("l3",))
    spec = _spec(agreement=summary)
    spec.save(tmp_path)
    d = json.loads((tmp_path / "reward.json").read_text())
    assert d["schema_version"] == 2 and d["agreement"]["outlier_labellers"] == ["l3"]
    loaded = RewardSpec.load(tmp_path)
    assert loaded == spec and loaded.agreement == summary and loaded.schema_version == 2


@pytest.mark.slow
def test_old_bundle_without_agreement_still_serves(word_toxicity_bundle, tmp_path):
    """A bundle without the agreement summary (every bundle before it) is scored by the service as before."""
    from rewardserve.cli import main

    written = json.loads((word_toxicity_bundle / "reward.json").read_text())
    assert written["schema_version"] == 1 and "agreement" not in written  # the version-1 layout, unchanged
    assert set(written) == set(OLD_REWARD_JSON)
    items = tmp_path / "items.jsonl"
    items.write_text('{"text": "have a nice day"}\n{"text": "you stupid ugly idiot"}\n')
    out = tmp_path / "scores.jsonl"
    assert main(["score", str(items), "-o", str(out), "--bundle", str(word_toxicity_bundle)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["reward"] > rows[1]["reward"]  # the toxic text gets the lower reward
