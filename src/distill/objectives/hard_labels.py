"""Hard teacher labels: the student learns the teacher's argmax as if it were gold."""

from __future__ import annotations

import torch

from distill.models.outputs import StepOutput, TeacherOutput
from distill.objectives.base import Access
from distill.objectives.task import task_loss


class HardLabelsObjective:
    """Cross-entropy against the teacher's predicted class (regression: MSE to its score).

    Needs only the teacher's labels, so the teacher runs once, offline, and is then unloaded.
    """

    access = Access.LABELS

    def __call__(
        self, batch: dict[str, torch.Tensor], student: StepOutput, teacher: TeacherOutput | None
    ) -> torch.Tensor:
        assert teacher is not None
        teacher_logits = teacher.logits.float()
        if teacher_logits.shape[-1] == 1:
            return task_loss(student.logits, teacher_logits.squeeze(-1))
        return task_loss(student.logits, teacher_logits.argmax(dim=-1))
