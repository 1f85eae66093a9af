"""manifest.json: the reward.json hash export records and the load-time check of it."""

from __future__ import annotations

import hashlib
import json

import pytest

from rewardserve.bundle import BundleError, RewardSpec
from rewardserve.enums import ModelKind, Precision
from rewardserve.files import CHUNK_BYTES, file_sha256
from rewardserve.manifest import MANIFEST_FILE, Manifest, VariantInfo, check_spec_hash

SPEC = RewardSpec(kind=ModelKind.classifier, id2label={0: "toxic", 1: "non_toxic"}, reward_label="non_toxic",
                  max_length=64)


def _bundle(tmp_path, record_hash: bool = True):
    SPEC.save(tmp_path)
    variant = VariantInfo(precision=Precision.fp32, file="model_fp32.onnx", opset=17, inputs=["input_ids"],
                          outputs=["logits"], providers=["CPUExecutionProvider"], sha256="0" * 64, passed=True)
    reward_sha256 = file_sha256(tmp_path / "reward.json") if record_hash else ""
    Manifest(source_fingerprint="f" * 64, model_type="bert", variants={"fp32": variant},
             reward_sha256=reward_sha256).save(tmp_path)
    return Manifest.load(tmp_path)


def test_file_sha256_streams_whole_file(tmp_path):
    data = bytes(range(256)) * (CHUNK_BYTES // 256 * 2 + 7)  # more than two chunks, not a multiple of one
    (tmp_path / "blob").write_bytes(data)
    assert file_sha256(tmp_path / "blob") == hashlib.sha256(data).hexdigest()


def test_unchanged_reward_json_passes(tmp_path):
    manifest = _bundle(tmp_path)
    assert len(manifest.reward_sha256) == 64
    assert check_spec_hash(tmp_path, manifest) is None


def test_edited_reward_json_is_refused_naming_the_file(tmp_path):
    manifest = _bundle(tmp_path)
    # The edit the issue names: a swapped reward label loads as a valid spec, scoring the other class.
    SPEC.with_updates(reward_label="toxic").save(tmp_path)
    RewardSpec.load(tmp_path)  # still a valid reward.json: only the hash catches it
    with pytest.raises(BundleError) as e:
        check_spec_hash(tmp_path, manifest)
    message = str(e.value)
    assert message.startswith(f"{tmp_path / 'reward.json'}: sha256 ") and "changed after export" in message
    assert str(tmp_path / MANIFEST_FILE) in message


def test_missing_reward_json_is_refused(tmp_path):
    manifest = _bundle(tmp_path)
    (tmp_path / "reward.json").unlink()
    with pytest.raises(BundleError, match=r"reward\.json: not found"):
        check_spec_hash(tmp_path, manifest)


def test_bundle_exported_before_the_hash_loads_with_a_warning(tmp_path):
    _bundle(tmp_path)
    # A manifest written before this field existed has no reward_sha256 key at all.
    path = tmp_path / MANIFEST_FILE
    d = json.loads(path.read_text())
    del d["reward_sha256"]
    path.write_text(json.dumps(d))
    old = Manifest.load(tmp_path)
    assert old.reward_sha256 == ""
    SPEC.with_updates(reward_label="toxic").save(tmp_path)  # not detectable: only warned about
    warning = check_spec_hash(tmp_path, old)
    assert warning is not None and "no reward_sha256 recorded" in warning and str(tmp_path / "reward.json") in warning
