"""After training: ONNX export (fp32 and int8, checked against PyTorch) and `distill bench
latency` across formats. May import every layer below modes (evaluation, reports, models,
data, ...)."""
