"""The engine: what scores, independent of any protocol.

Owns the model registry and the scoring model (``models``), text encoding (``encoding``), the
one batcher per model (``batcher``), logits -> probabilities and rewards (``postprocess``),
composite rewards (``composite``, over a small ``Scorer`` protocol) and the load-time bundle
checks (``integrity``). Imports the backends (through ``backends.base``) and the service root;
never the edge, the client or the jobs.
"""
