"""Soft targets: KL between temperature-softened teacher and student distributions.

Hinton, Vinyals and Dean 2015, "Distilling the Knowledge in a Neural Network".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from distill.objectives.base import Access
from distill.outputs import StepOutput, TeacherOutput


def soft_target_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """T^2 * KL(softmax(t/T) || softmax(s/T)), averaged over the batch.

    Args:
        student_logits: `[batch, classes]`.
        teacher_logits: `[batch, classes]`, no gradient expected.
        temperature: T > 0; the T^2 factor keeps gradient magnitudes comparable across T.
    Returns:
        A scalar. For regression (`classes == 1`) the loss is the MSE between the scores.
    """
    if student_logits.shape[-1] == 1:
        return F.mse_loss(student_logits.float(), teacher_logits.float())
    student_log_probs = F.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher_log_probs = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    kl = F.kl_div(student_log_probs, teacher_log_probs, log_target=True, reduction="batchmean")
    return kl * temperature**2


class SoftTargetsObjective:
    """Needs the teacher's logits only, so those are cached and the teacher is not loaded."""

    access = Access.LOGITS

    def __init__(self, temperature: float = 2.0) -> None:
        self.temperature = temperature

    def __call__(
        self, batch: dict[str, torch.Tensor], student: StepOutput, teacher: TeacherOutput | None
    ) -> torch.Tensor:
        assert teacher is not None
        return soft_target_loss(student.logits, teacher.logits, self.temperature)
