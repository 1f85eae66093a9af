"""KServe v2 / Open Inference Protocol: the real Triton client against the server, values = native Score.

tritonclient runs in a child process (tests/service/triton_probe.py): its ``inference`` protobuf
names clash with ours in one process. Raw-vs-typed contents and error codes are also checked
here with our own stubs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_tools import protoc
from rewardserve.service.client import RewardClient

from rewardserve.kserve import grpc_predict_v2_pb2 as pb
from rewardserve.kserve import grpc_predict_v2_pb2_grpc
from tests.conftest import REPO

from .conftest import NORMALIZATION, ServerThread, make_config

pytestmark = pytest.mark.e2e

TEXTS = ["the reply was kind and helpful", "go away", "a much longer answer " * 6, "ok", "héllo wörld ✓"]
MODELS = ["pairwise", "classifier"]


@pytest.fixture(scope="module")
def kserve_server(bundles):
    s = ServerThread(make_config(bundles, names=tuple(MODELS), composites={"safe": "pairwise - 0.5*classifier:toxic"}))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def native(kserve_server):
    """Native Score results per model (and normalised pairwise rewards)."""
    with RewardClient(kserve_server.target) as client:
        out = {m: client.score(TEXTS, model=m).scores for m in [*MODELS, "safe"]}
        out["normalized"] = client.score(TEXTS, model="pairwise", normalize=True).scores
    return out


@pytest.fixture(scope="module")
def triton_seen(kserve_server, tmp_path_factory) -> dict:
    """What the unmodified tritonclient saw (run in its own process)."""
    descriptors = tmp_path_factory.mktemp("kserve") / "ours.pb"
    assert protoc.main(["protoc", f"-I{REPO / 'proto'}", f"--descriptor_set_out={descriptors}",
                        str(REPO / "proto/rewardserve/kserve/grpc_predict_v2.proto")]) == 0
    job = json.dumps({"models": MODELS, "texts": TEXTS, "composite": "safe"})
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("triton_probe.py")), kserve_server.target,
                           str(descriptors)], input=job, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_schema_is_wire_identical_to_tritonclients(triton_seen):
    # Triton's InferParameter adds double_param and uint64_param to KServe's; all else is equal.
    assert triton_seen["schema_differences"] == ["InferParameter"]


def test_server_and_model_readiness_and_metadata(triton_seen):
    assert triton_seen["live"] is True and triton_seen["ready"] is True
    assert triton_seen["server"][0] == "rewardserve"
    assert triton_seen["model_ready"] == {"pairwise": True, "classifier": True, "safe": True, "nope": False}
    meta = triton_seen["metadata"]
    assert meta["classifier"]["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": ["-1"]}]
    assert meta["classifier"]["outputs"] == [
        {"name": "logits", "datatype": "FP32", "shape": ["-1", "2"]},
        {"name": "probabilities", "datatype": "FP32", "shape": ["-1", "2"]},
        {"name": "reward", "datatype": "FP32", "shape": ["-1"]},
    ]
    assert meta["pairwise"]["versions"] == ["1"] and meta["pairwise"]["platform"] == "onnxruntime_onnx"
    assert [o["name"] for o in meta["safe"]["outputs"]] == ["reward", "parts"]
    assert meta["safe"]["outputs"][1]["shape"] == ["-1", "2"] and meta["safe"]["platform"] == "rewardserve_composite"


@pytest.mark.parametrize("model", MODELS)
def test_infer_equals_native_score(triton_seen, native, model):
    seen, expected = triton_seen["infer"][model], native[model]
    assert seen["dtypes"] == ["float32"] * 3
    assert np.asarray(seen["logits"]) == pytest.approx(np.array([s.logits for s in expected]), abs=1e-5)
    assert np.asarray(seen["probabilities"]) == pytest.approx(np.array([s.probabilities for s in expected]), abs=1e-6)
    assert seen["reward"] == pytest.approx([s.reward for s in expected], abs=1e-5)


def test_requested_outputs_column_shape_normalize_and_composite(triton_seen, native):
    assert set(triton_seen["column"]) == {"reward", "dtypes"}  # only what was asked for
    assert triton_seen["column"]["reward"] == pytest.approx([s.reward for s in native["pairwise"]], abs=1e-5)
    normalized = triton_seen["normalized"]["reward"]
    assert normalized == pytest.approx([s.reward for s in native["normalized"]], abs=1e-5)
    assert normalized == pytest.approx([(s.reward - NORMALIZATION.mean) / NORMALIZATION.std
                                        for s in native["pairwise"]], abs=1e-5)
    safe = triton_seen["infer"]["safe"]
    assert safe["reward"] == pytest.approx([s.reward for s in native["safe"]], abs=1e-5)
    assert np.asarray(safe["parts"]) == pytest.approx(
        np.array([[s.reward, c.probabilities[0]] for s, c in zip(native["pairwise"], native["classifier"],
                                                                  strict=True)]), abs=1e-5)


def test_errors_reach_tritonclient_with_their_codes(triton_seen):
    errors = triton_seen["errors"]
    assert errors["unknown model"][0] == "StatusCode.NOT_FOUND" and "'nope' not found" in errors["unknown model"][1]
    assert errors["unknown output"] == ["StatusCode.INVALID_ARGUMENT", "outputs: 'embedding' is not an output of "
                                        "model 'pairwise' (outputs: ['logits', 'probabilities', 'reward'])"]
    assert errors["wrong datatype"][0] == "StatusCode.INVALID_ARGUMENT" and "must be BYTES" in errors["wrong datatype"][1]
    assert errors["empty text"] == ["StatusCode.INVALID_ARGUMENT", "text[1]: empty"]
    assert errors["unknown version"][0] == "StatusCode.NOT_FOUND" and "no version '7'" in errors["unknown version"][1]


def _infer(stub, **kwargs) -> pb.ModelInferResponse:
    return stub.ModelInfer(pb.ModelInferRequest(**kwargs), timeout=30)


def test_typed_bytes_contents_and_bad_tensors(kserve_server, native):
    with grpc.insecure_channel(kserve_server.target) as channel:
        stub = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)
        text = pb.ModelInferRequest.InferInputTensor
        typed = text(name="text", datatype="BYTES", shape=[len(TEXTS)],
                     contents=pb.InferTensorContents(bytes_contents=[t.encode() for t in TEXTS]))
        r = _infer(stub, model_name="classifier", id="req-7", inputs=[typed])
        assert r.id == "req-7" and r.model_name == "classifier" and [o.name for o in r.outputs][-1] == "reward"
        reward = np.frombuffer(r.raw_output_contents[2], "<f4")
        assert reward == pytest.approx([s.reward for s in native["classifier"]], abs=1e-5)
        bad = {
            "shape [2] but 3 texts": ({"inputs": [text(name="text", datatype="BYTES", shape=[2],
                                                       contents=pb.InferTensorContents(bytes_contents=[b"a"] * 3))]},
                                      "shape says 2 texts, the contents hold 3"),
            "truncated raw": ({"inputs": [text(name="text", datatype="BYTES", shape=[1])],
                               "raw_input_contents": [b"\x09\x00\x00\x00abc"]}, "length 9 runs past the end"),
            "not UTF-8": ({"inputs": [text(name="text", datatype="BYTES", shape=[1])],
                           "raw_input_contents": [b"\x02\x00\x00\x00\xff\xfe"]}, "text[0]: not valid UTF-8"),
            "wrong name": ({"inputs": [text(name="input_ids", datatype="BYTES", shape=[1])]},
                           "inputs[0].name: expected 'text', got 'input_ids'"),
            "shape [1, 2]": ({"inputs": [text(name="text", datatype="BYTES", shape=[1, 2])]},
                             "shape must be [N] or [N, 1]"),
            "two inputs": ({"inputs": [typed, typed]}, "expected one BYTES tensor named 'text', got 2 inputs"),
            "bad truncation": ({"inputs": [typed], "parameters": {"truncation": pb.InferParameter(string_param="mid")}},
                               "parameters.truncation: expected one of"),
        }
        for case, (fields, message) in bad.items():
            with pytest.raises(grpc.RpcError) as e:
                _infer(stub, model_name="classifier", **fields)
            assert e.value.code() is grpc.StatusCode.INVALID_ARGUMENT, case
            assert message in e.value.details(), (case, e.value.details())
