"""Service stage: batched gRPC reward server over ONNX Runtime. Never imports torch."""
