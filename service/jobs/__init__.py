"""Batch jobs over files: streamed scoring (``streaming``), ``rewardserve filter`` (``filter``) and
RewardBench accuracy of a served model (``rewardbench``, for ``rewardserve eval --server``).

They score through a server (with the client SDK) or in-process (with the engine), reading
lazily with a bounded number of chunks in flight. May import the client, the engine and the
service root; never the edge.
"""
