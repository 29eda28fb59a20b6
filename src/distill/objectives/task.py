"""The ordinary supervised loss on gold labels: cross-entropy, or MSE for regression."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from distill.data.batching import NO_LABEL
from distill.models.outputs import StepOutput, TeacherOutput
from distill.objectives.base import Access


def task_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for `[batch, classes]` logits and `[batch]` class indices; MSE when the
    labels are floats (regression, logits `[batch, 1]`). Rows without a gold label (transfer
    rows: class -100, or NaN for regression) are left out of the mean; a batch with none
    gives a zero that still belongs to the graph, so every process runs the same backward."""
    gold = ~labels.isnan() if labels.is_floating_point() else labels != NO_LABEL
    if not bool(gold.all()):
        if not bool(gold.any()):
            return logits.sum() * 0.0
        logits, labels = logits[gold], labels[gold]
    if labels.is_floating_point():
        return F.mse_loss(logits.squeeze(-1), labels)
    return F.cross_entropy(logits, labels)


class TaskObjective:
    """Gold labels; the teacher is not needed (weight 0 turns it off)."""

    access = Access.NONE

    def __call__(
        self, batch: dict[str, torch.Tensor], student: StepOutput, teacher: TeacherOutput | None
    ) -> torch.Tensor:
        return task_loss(student.logits, batch["labels"])
