"""A zero-token item is refused with INVALID_ARGUMENT naming it, and never reaches a shared batch."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from rewardserve.service.engine.models import ModelRegistry

from rewardserve.v1 import reward_pb2 as pb
from rewardserve.v1 import reward_pb2_grpc

from .conftest import ServerThread, make_config

pytestmark = pytest.mark.e2e

# What many tokenizers' chat templates do: the contents only. With GPT-2's tokenizer (no special
# tokens added) a conversation of empty messages becomes zero tokens.
CONTENT_ONLY = "{% for m in messages %}{{ m['content'] }}{% endfor %}"


def content_only_loader(config, metrics):
    registry = ModelRegistry.load(config, metrics)
    model = registry.models["gpt2"]
    model.spec = model.spec.with_updates(chat_template=CONTENT_ONLY)
    return registry


def test_zero_token_item_gets_invalid_argument_and_a_concurrent_good_request_succeeds(bundles):
    # A long max_wait puts both requests in one batch if the empty item is let through.
    server = ServerThread(make_config(bundles, names=("gpt2",), max_wait_ms=300.0, inference_workers=1),
                          loader=content_only_loader)
    empty = pb.ScoreRequest(items=[pb.Item(text="fine"), pb.Item(conversation=pb.Conversation(
        messages=[pb.ChatMessage(role="user", content=""), pb.ChatMessage(role="assistant", content="")]))])
    good = pb.ScoreRequest(items=[pb.Item(text="a good answer")])
    try:
        with grpc.insecure_channel(server.target) as channel, ThreadPoolExecutor(2) as pool:
            stub = reward_pb2_grpc.RewardServiceStub(channel)
            bad_call = pool.submit(stub.Score, empty, timeout=30)
            good_call = pool.submit(stub.Score, good, timeout=30)
            assert len(good_call.result().scores) == 1
            with pytest.raises(grpc.RpcError) as e:
                bad_call.result()
    finally:
        server.stop()
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details().startswith("items[1]: no tokens")
