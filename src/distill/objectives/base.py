"""The Objective protocol and the teacher-access levels the execution plan is built from."""

from __future__ import annotations

from enum import IntEnum
from typing import Protocol, runtime_checkable

import torch

from distill.outputs import StepOutput, TeacherOutput


class Access(IntEnum):
    """How much of the teacher an objective needs; ordered, so a recipe needs the maximum."""

    NONE = 0  # gold labels only (the task loss)
    LABELS = 1  # the teacher's argmax labels
    LOGITS = 2  # the teacher's output scores
    STATES = 3  # hidden states / attentions
    INTERVENE = 4  # forward passes with interventions (IIT)


@runtime_checkable
class Objective(Protocol):
    """One term of the loss. `__call__` returns a scalar; the trainer weights and sums them."""

    access: Access

    def __call__(
        self, batch: dict[str, torch.Tensor], student: StepOutput, teacher: TeacherOutput | None
    ) -> torch.Tensor: ...


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` `[batch, seq]` over positions where `mask` is 1; 0 (not NaN) if none."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)
