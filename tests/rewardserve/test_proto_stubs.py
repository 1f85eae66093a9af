"""The generated stubs in rewardserve/v1 match proto/ exactly (regenerate, never hand-edit)."""

from __future__ import annotations

from pathlib import Path

from grpc_tools import protoc

from tests.conftest import REPO

STUBS = ("reward_pb2.py", "reward_pb2.pyi", "reward_pb2_grpc.py")
REGENERATE = ("python -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. "
              "proto/rewardserve/v1/reward.proto")


def test_stubs_match_the_proto(tmp_path: Path):
    rc = protoc.main(["protoc", f"-I{REPO / 'proto'}", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}",
                      f"--grpc_python_out={tmp_path}", str(REPO / "proto/rewardserve/v1/reward.proto")])
    assert rc == 0
    for name in STUBS:
        fresh = (tmp_path / "rewardserve/v1" / name).read_text()
        committed = (REPO / "rewardserve/v1" / name).read_text()
        assert fresh == committed, f"rewardserve/v1/{name} drifted from the .proto: run `{REGENERATE}`"
