"""Calls a server with the unmodified tritonclient gRPC client; prints what it saw as JSON.

Run as a separate process by tests/service/test_kserve.py: tritonclient's own
``grpc_service.proto`` defines the same ``inference.*`` names as rewardserve's KServe stubs, and
protobuf's default pool refuses both in one process.

Usage: python triton_probe.py TARGET DESCRIPTOR_SET < {"models": [...], "texts": [...], "composite": NAME}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import tritonclient.grpc as triton
from google.protobuf import descriptor_pb2
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException


def texts_input(texts: list[str], shape: list[int]) -> triton.InferInput:
    tensor = triton.InferInput("text", shape, "BYTES")
    tensor.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=object).reshape(shape))
    return tensor


def outputs(result: triton.InferResult) -> dict[str, list]:
    names = [o.name for o in result.get_response().outputs]
    return {n: result.as_numpy(n).tolist() for n in names} | {"dtypes": [str(result.as_numpy(n).dtype) for n in names]}


def error_of(fn, *args, **kwargs) -> list[str]:
    try:
        fn(*args, **kwargs)
    except InferenceServerException as e:
        return [str(e.status()), e.message()]
    return ["no error", ""]


def schema_differences(ours_file: str) -> list[str]:
    """Messages and RPCs of our schema that differ from the ones tritonclient ships."""
    theirs = descriptor_pb2.FileDescriptorProto()
    service_pb2.DESCRIPTOR.CopyToProto(theirs)
    ours = descriptor_pb2.FileDescriptorSet.FromString(Path(ours_file).read_bytes()).file[0]

    def plain(m):  # json_name is derived, and only descriptor sets spell it out
        for f in m.field:
            f.ClearField("json_name")
        for n in m.nested_type:
            plain(n)
        return m

    their_messages = {m.name: plain(m) for m in theirs.message_type}
    diffs = [m.name for m in ours.message_type if plain(m) != their_messages.get(m.name)]
    their_rpcs = {m.name: m for s in theirs.service for m in s.method}
    return diffs + [m.name for m in ours.service[0].method if m != their_rpcs.get(m.name)]


def main() -> None:
    target, descriptor_set = sys.argv[1], sys.argv[2]
    job = json.load(sys.stdin)
    texts, composite = job["texts"], job["composite"]
    client = triton.InferenceServerClient(target)
    meta = client.get_server_metadata()
    seen = {
        "live": client.is_server_live(), "ready": client.is_server_ready(),
        "server": [meta.name, meta.version],
        "model_ready": {m: client.is_model_ready(m) for m in [*job["models"], composite, "nope"]},
        "metadata": {m: client.get_model_metadata(m, as_json=True) for m in [*job["models"], composite]},
        "infer": {m: outputs(client.infer(m, [texts_input(texts, [len(texts)])])) for m in [*job["models"], composite]},
        "column": outputs(client.infer(job["models"][0], [texts_input(texts, [len(texts), 1])],
                                       outputs=[triton.InferRequestedOutput("reward")])),
        "normalized": outputs(client.infer(job["models"][0], [texts_input(texts, [len(texts)])],
                                           parameters={"normalize": True})),
        "errors": {
            "unknown model": error_of(client.infer, "nope", [texts_input(texts, [len(texts)])]),
            "unknown output": error_of(client.infer, job["models"][0], [texts_input(texts, [len(texts)])],
                                       outputs=[triton.InferRequestedOutput("embedding")]),
            "wrong datatype": error_of(client.infer, job["models"][0], [_fp32_text()]),
            "empty text": error_of(client.infer, job["models"][0], [texts_input(["ok", ""], [2])]),
            "unknown version": error_of(client.get_model_metadata, job["models"][0], model_version="7"),
        },
        "schema_differences": schema_differences(descriptor_set),
    }
    json.dump(seen, sys.stdout)


def _fp32_text() -> triton.InferInput:
    tensor = triton.InferInput("text", [2], "FP32")
    tensor.set_data_from_numpy(np.array([1.0, 2.0], dtype=np.float32))
    return tensor


if __name__ == "__main__":
    main()
