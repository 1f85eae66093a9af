"""rewardserve: reward models for RLHF, from training to a batched gRPC service.

The core package holds what every stage shares and nothing heavy: the bundle contract
(``reward.json``), the ONNX bundle manifest, text formatting, enums and the CLI. It never
imports torch, so the serving path stays torch-free.
"""

__version__ = "0.1.0"
