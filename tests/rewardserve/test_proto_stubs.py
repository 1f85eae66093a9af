"""The generated stubs in rewardserve/ match proto/ exactly (regenerate, never hand-edit)."""

from __future__ import annotations

from pathlib import Path

import pytest
from grpc_tools import protoc

from tests.conftest import REPO

# Every .proto under proto/ and the stubs generated from it (same directory, same stem).
PROTOS = ("rewardserve/v1/reward.proto", "rewardserve/kserve/grpc_predict_v2.proto")
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
REGENERATE = ("python -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. "
              + " ".join(f"proto/{p}" for p in PROTOS))


def test_every_proto_is_listed():
    assert sorted(str(p.relative_to(REPO / "proto")) for p in (REPO / "proto").rglob("*.proto")) == sorted(PROTOS)


@pytest.mark.parametrize("proto", PROTOS)
def test_stubs_match_the_proto(tmp_path: Path, proto: str):
    rc = protoc.main(["protoc", f"-I{REPO / 'proto'}", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}",
                      f"--grpc_python_out={tmp_path}", str(REPO / "proto" / proto)])
    assert rc == 0
    for suffix in SUFFIXES:
        name = proto.removesuffix(".proto") + suffix
        fresh = (tmp_path / name).read_text()
        committed = (REPO / name).read_text()
        assert fresh == committed, f"{name} drifted from proto/{proto}: run `{REGENERATE}`"
