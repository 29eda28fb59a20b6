"""Scoring models: the official metrics of each task, evaluating a model on a dev split,
scoring a saved model or ONNX export (`distill eval`), labelling new text (`distill predict`)
and per-example latency at batch 1. May import reports, config, models, data, runtime and
errors; not training or teacher."""
