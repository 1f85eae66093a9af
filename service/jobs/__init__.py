"""Batch jobs over files: streamed scoring (``streaming``) and ``rewardserve filter`` (``filter``).

They score through a server (with the client SDK) or in-process (with the engine), reading
lazily with a bounded number of chunks in flight. May import the client, the engine and the
service root; never the edge.
"""
