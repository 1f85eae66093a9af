"""Backends: what runs a padded batch of token ids and returns logits.

``base`` is the interface (``Backend``: load a variant file, ``run(batch) -> logits``, the
provider actually in use) with the shared right-padding in ``padding``; ``ort`` implements it on ONNX Runtime.
A new runtime is a new module here, chosen in ``base.open_backend``. Imports nothing of the
service but the root (domain types, config).
"""
