"""Bytes that do not decode as the request message get INVALID_ARGUMENT, unary and mid-stream."""

from __future__ import annotations

import grpc
import pytest
from rewardserve.service.edge.convert import Undecodable, tolerant

from rewardserve.v1 import reward_pb2 as pb

pytestmark = pytest.mark.e2e

GARBAGE = {
    "corrupt wire format": b"\xff\xff\xff\xff\x0f",
    "invalid UTF-8": b"\x0a\x03\x0a\x01\xff",  # items[0].text = b"\xff"
    "lone surrogate": b"\x0a\x05\x0a\x03" + "\ud800".encode("utf-8", "surrogatepass"),
}


def raw(channel, method: str, stream: bool = False):
    kind = channel.stream_stream if stream else channel.unary_unary
    return kind(f"/rewardserve.v1.RewardService/{method}", request_serializer=None, response_deserializer=None)


def test_tolerant_deserializer():
    assert tolerant(pb.ScoreRequest)(b"") == pb.ScoreRequest()
    bad = tolerant(pb.ScoreRequest)(GARBAGE["invalid UTF-8"])
    assert bad == Undecodable("rewardserve.v1.ScoreRequest", "String field had bad UTF-8")


# ListModelsRequest has no fields: any well-formed bytes decode (as unknown fields), only corrupt ones fail.
CASES = [(m, g) for m in ("Score", "Compare", "GetModel") for g in sorted(GARBAGE)] + \
    [("ListModels", "corrupt wire format")]


@pytest.mark.parametrize(("method", "name"), CASES)
def test_undecodable_unary_request_is_invalid_argument(server, method, name):
    with grpc.insecure_channel(server.target) as channel, pytest.raises(grpc.RpcError) as e:
        raw(channel, method)(GARBAGE[name], timeout=10)
    assert e.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details().startswith("request is not a valid rewardserve.v1.")


def test_undecodable_stream_message_ends_the_stream_with_invalid_argument(server):
    good = pb.ScoreRequest(items=[pb.Item(text="fine")], request_id="ok").SerializeToString()
    with grpc.insecure_channel(server.target) as channel:
        call = raw(channel, "ScoreStream", stream=True)(iter([good, GARBAGE["lone surrogate"]]), timeout=10)
        with pytest.raises(grpc.RpcError) as e:
            list(call)
    assert e.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "String field had bad UTF-8" in e.value.details()
