"""Score a model on a split: batched no-grad predictions in the examples' original order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from distill.data.batching import Encoded, iterate, model_inputs, to_device
from distill.data.tasks import Task
from distill.evaluation.metrics import compute_scores, headline, predictions_from_logits
from distill.models.onnx import model_device


@dataclass
class Evaluation:
    score: float
    scores: dict[str, float]
    logits: np.ndarray  # [examples, num_labels], in the split's order
    predictions: np.ndarray


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module, encoded: Encoded, batch_size: int, pad_token_id: int
) -> np.ndarray:
    was_training = model.training
    model.eval()
    try:  # a failed evaluation (OOM, an interrupt) must not leave a training model in eval mode
        logits = np.zeros((len(encoded), model.config.num_labels), dtype=np.float32)
        device = model_device(model)  # wherever training left it (GPU or CPU; ONNX: CPU)
        for batch in iterate(encoded, batch_size, pad_token_id):
            output = model(**to_device(model_inputs(batch), device))
            logits[batch["index"].numpy()] = output.logits.float().cpu().numpy()
    finally:
        model.train(was_training)
    return logits


def evaluate(
    model: torch.nn.Module, task: Task, encoded: Encoded, batch_size: int, pad_token_id: int
) -> Evaluation:
    logits = predict_logits(model, encoded, batch_size, pad_token_id)
    predictions = predictions_from_logits(task, logits)
    scores = compute_scores(task, predictions, np.asarray(encoded.labels))
    return Evaluation(headline(scores), scores, logits, predictions)
