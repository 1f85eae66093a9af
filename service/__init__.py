"""The reward service: protocols at the edge, scoring in the engine, runtimes in the backends.

A request flows one way (README "Architecture")::

    edge/      speaks a protocol: gRPC servicer, wire decoding, KServe v2, the HTTP routes,
               protobuf <-> domain conversion, errors -> status codes, TLS/tokens/limits
    engine/    scores: model registry, text encoding, batcher, post-processing, composites
    backends/  runs a padded batch: one interface, ONNX Runtime and OpenVINO, chosen per host
    client/    the Python SDK (no server code): sync/async client, targets, TRL reward function
    jobs/      batch jobs over files: streamed scoring, ``filter``
    cli/       the commands: serve, health, score, filter

The modules here, at the root (``domain``, ``errors``, ``config``, ``recipes``, ``metrics`` (with the drain meter),
``credential_files``), are used by every folder and import none of them. Import rules
(``tests/test_layout.py``): backends import only the root; the engine never imports the edge,
the client or the jobs; the client never imports the edge or the engine; no cycles.
"""
