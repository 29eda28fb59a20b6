"""Latency as metrics.json defines it: median per-example time at batch 1 over real sentences."""

from __future__ import annotations

import statistics
import time

import torch
from transformers import PreTrainedModel

from distill.data.batching import Encoded, collate, model_inputs, to_device
from distill.models.onnx import model_device
from distill.runtime import distributed

WARMUP_PASSES = 10


@torch.no_grad()
def latency_ms(
    models: dict[str, PreTrainedModel],
    encoded: Encoded,
    pad_token_id: int,
    max_examples: int = 1000,
) -> dict[str, float]:
    """Median milliseconds per example at batch 1, each sentence at its real length.

    The models are timed alternately on every sentence, so a slow moment of the machine hits
    all of them alike and the ratio between them (the speed-up) stays fair. In a multi-process
    run only the main process measures (the others are idle by then or finishing).
    """
    if not distributed.is_main():  # timed by the main process alone (metrics are its to write)
        return {name: float("nan") for name in models}
    for model in models.values():
        model.eval()
    indices = list(range(min(len(encoded), max_examples)))
    batches = [model_inputs(collate(encoded, [i], pad_token_id)) for i in indices]
    devices = {name: model_device(model) for name, model in models.items()}
    for name, model in models.items():
        for batch in batches[:WARMUP_PASSES]:
            model(**to_device(batch, devices[name]))
    timings: dict[str, list[float]] = {name: [] for name in models}
    for batch in batches:
        for name, model in models.items():
            inputs = to_device(batch, devices[name])
            _synchronize(devices[name])
            start = time.perf_counter()
            model(**inputs)
            _synchronize(devices[name])  # GPU kernels run asynchronously: wait for them
            timings[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in timings.items()}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
