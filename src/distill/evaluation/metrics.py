"""GLUE's official metrics and the headline score (their mean, as the GLUE score takes it)."""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from distill.data.tasks import Task


def predictions_from_logits(task: Task, logits: np.ndarray) -> np.ndarray:
    """Class indices for classification (`[n, classes]`), scores for regression (`[n, 1]`)."""
    return logits[:, 0] if task.is_regression else logits.argmax(axis=-1)


def compute_scores(task: Task, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Every official metric of the task, as plain floats in [−1, 1]."""
    scores = {}
    for metric in task.metrics:
        if metric == "accuracy":
            value = accuracy_score(labels, predictions)
        elif metric == "f1":
            value = f1_score(labels, predictions)  # GLUE's F1 is on the positive class (1)
        elif metric == "matthews":
            value = matthews_corrcoef(labels, predictions)
        elif metric == "pearson":
            value = pearsonr(predictions, labels)[0] if _varies(predictions, labels) else 0.0
        elif metric == "spearman":
            value = spearmanr(predictions, labels)[0] if _varies(predictions, labels) else 0.0
        else:
            raise ValueError(f"unknown metric {metric}")
        scores[metric] = float(value)
    return scores


def headline(scores: dict[str, float]) -> float:
    return float(np.mean(list(scores.values())))


def _varies(predictions: np.ndarray, labels: np.ndarray) -> bool:
    """A correlation with a constant is undefined (NaN); report 0 instead."""
    return bool(np.std(predictions) > 0 and np.std(labels) > 0)
