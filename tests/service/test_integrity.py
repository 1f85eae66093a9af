"""Bundles whose files no longer belong together are refused, naming the file and the problem."""

from __future__ import annotations

import json
import shutil

import pytest
from rewardserve.service.engine.models import ModelRegistry
from rewardserve.service.metrics import ServiceMetrics
from tokenizers import Tokenizer

from rewardserve.bundle import BundleError

from .conftest import make_config


def load(bundle):
    return ModelRegistry.load(make_config({"classifier": bundle}, names=("classifier",)), ServiceMetrics(),
                              warm_up=False)


def add_tokens(path, n: int) -> None:
    """Grow a tokenizer past the model's embedding table, as adding special tokens without resizing does."""
    tok = Tokenizer.from_file(str(path))
    tok.add_tokens([f"<extra_{i}>" for i in range(n)])
    tok.save(str(path))


def test_export_records_the_tokenizer_hash_and_the_intact_bundle_loads(bundles):
    manifest = json.loads((bundles["classifier"] / "manifest.json").read_text())
    assert len(manifest["tokenizer_sha256"]) == 64
    assert load(bundles["classifier"]).get("").name == "classifier"


def test_changed_onnx_weights_fail_the_hash(bundles, tmp_path):
    import onnx
    from onnx import numpy_helper

    bundle = shutil.copytree(bundles["classifier"], tmp_path / "b")
    model = onnx.load(bundle / "model_fp32.onnx")
    weight = next(w for w in model.graph.initializer if w.data_type == onnx.TensorProto.FLOAT)
    array = numpy_helper.to_array(weight).copy()
    array.flat[0] += 1.0  # one weight off: the model still loads and runs, and scores differently
    weight.CopyFrom(numpy_helper.from_array(array, weight.name))
    onnx.save(model, bundle / "model_fp32.onnx")
    with pytest.raises(BundleError, match=r"model_fp32.onnx: sha256 .* does not match .*manifest.json"):
        load(bundle)


def test_replaced_tokenizer_fails_the_hash(bundles, tmp_path):
    bundle = shutil.copytree(bundles["classifier"], tmp_path / "b")
    shutil.copyfile(bundles["gpt2"] / "tokenizer.json", bundle / "tokenizer.json")  # another model's
    with pytest.raises(BundleError, match=r"tokenizer.json: sha256 .* changed or corrupted after export"):
        load(bundle)


# fused BERT embedding and a plain Gather; with the embedding size recorded (a static check, for
# every runtime) and without it (old manifests: the ONNX Runtime probe); OpenVINO reads out-of-range
# ids without an error, so only the recorded size protects it.
@pytest.mark.parametrize(("name", "recorded", "backend"), [("classifier", False, "onnxruntime"),
                                                           ("gpt2", False, "onnxruntime"),
                                                           ("classifier", True, "onnxruntime"),
                                                           ("classifier", True, "openvino")])
def test_tokenizer_larger_than_the_embedding_is_refused(bundles, tmp_path, name, recorded, backend):
    if backend == "openvino":
        pytest.importorskip("openvino", reason="the openvino backend is not installed")
    bundle = shutil.copytree(bundles[name], tmp_path / "b")
    vocab = Tokenizer.from_file(str(bundle / "tokenizer.json")).get_vocab_size(with_added_tokens=True)
    add_tokens(bundle / "tokenizer.json", 3)
    manifest = json.loads((bundle / "manifest.json").read_text())
    del manifest["tokenizer_sha256"]  # a bundle exported before hashes were recorded: the size check still catches it
    if recorded:
        assert manifest["embedding_rows"] == vocab
    else:
        del manifest["embedding_rows"]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    config = make_config({name: bundle}, names=(name,), backend=backend)
    with pytest.raises(BundleError) as e:
        ModelRegistry.load(config, ServiceMetrics(), warm_up=False)
    assert f"tokenizer.json: does not match the model model_fp32.onnx: the tokenizer's token id {vocab + 2}" \
        in str(e.value)
    assert "outside the model's embedding table" in str(e.value)


def test_edited_reward_json_fails_the_hash(bundles, tmp_path):
    """Swapping the reward label after export would silently flip every reward: refused at load."""
    bundle = shutil.copytree(bundles["classifier"], tmp_path / "b")
    spec = json.loads((bundle / "reward.json").read_text())
    labels = list(spec["id2label"].values()) if isinstance(spec["id2label"], dict) else spec["id2label"]
    spec["reward_label"] = next(label for label in labels if label != spec["reward_label"])
    (bundle / "reward.json").write_text(json.dumps(spec))
    with pytest.raises(BundleError, match=r"reward.json: sha256 .* does not match .*manifest.json"):
        load(bundle)


def test_bundle_without_the_reward_hash_loads_with_a_warning(bundles, tmp_path, caplog):
    bundle = shutil.copytree(bundles["classifier"], tmp_path / "b")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest.pop("reward_sha256")  # exported before reward.json was hashed
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level("WARNING", logger="rewardserve.service.engine.models"):
        assert load(bundle).get("").name == "classifier"
    assert "no reward_sha256 recorded" in caplog.text
