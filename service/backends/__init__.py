"""Backends: what runs a padded batch of token ids and returns logits.

``base`` is the interface (``Backend``: load a variant file, ``run(batch) -> logits``, the
provider actually in use, ``pad_to_multiple`` for bounded shapes) and ``open_backend``, which
``choice`` answers: the combination (variant, runtime, precision, device) a bundle is served
with on this host, and why. ``runtimes`` opens one; ``ort`` (ONNX Runtime) and ``openvino``
(optional: the ``cpu`` extra) implement it. A new runtime is a new module here. Imports nothing
of the service but the root (domain types, config).
"""
