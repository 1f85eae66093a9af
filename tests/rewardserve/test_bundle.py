"""The reward.json contract: round trip and validation that names the bad field."""

from __future__ import annotations

import json

import pytest

from rewardserve.bundle import BundleError, Normalization, RewardSpec
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
        ({"schema_version": 9}, "field 'schema_version': must be 1"),
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
