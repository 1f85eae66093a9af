"""Export stage: model bundle -> parity-checked ONNX bundle (fp32, fp16, int8)."""
