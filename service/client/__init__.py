"""The Python SDK for a rewardserve server: no server code, only gRPC stubs and the domain types.

Owns the sync and async clients (``client``), target strings and channel options
(``targets``), TLS and token credentials (``credentials``), its own protobuf conversion
(``convert``) and the TRL reward function (``reward_func``). Imports the service root, never
the edge or the engine.

Example::

    from rewardserve.service.client import RewardClient

    with RewardClient("127.0.0.1:50051") as client:
        client.score(["Human: hi\\n\\nAssistant: hello"]).scores[0].reward
"""

from rewardserve.service.client.client import AsyncRewardClient, RetryPolicy, RewardClient, RewardServiceError

__all__ = ["AsyncRewardClient", "RetryPolicy", "RewardClient", "RewardServiceError"]
