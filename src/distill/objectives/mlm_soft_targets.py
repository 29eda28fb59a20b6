"""Soft targets on the masked-LM distribution (DistilBERT's L_ce, Sanh et al. 2019).

At each masked position, T^2 * KL(teacher || student) between the temperature-softened
distributions over the vocabulary, averaged over masked positions; only those rows are
gathered, so the loss never holds a `[positions, vocab]` pair for unmasked tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from distill.errors import DistillError
from distill.models.outputs import StepOutput, TeacherOutput
from distill.objectives.base import Access
from distill.objectives.mlm import check_vocabulary_logits, masked_positions


def masked_soft_target_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """`[positions, vocab]` in: T^2 * mean over positions of KL(p_teacher/T || p_student/T)."""
    teacher_log = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    student_log = F.log_softmax(student_logits.float() / temperature, dim=-1)
    per_position = (teacher_log.exp() * (teacher_log - student_log)).sum(-1)
    return per_position.mean() * temperature**2


class MaskedLMSoftTargetsObjective:
    access = Access.LOGITS
    averaged_over = "masked_tokens"
    corpus_only = True  # task recipes refuse it (teacher.plan.prepare)

    def __init__(self, temperature: float = 2.0) -> None:
        if temperature <= 0:
            raise DistillError(f"temperature: {temperature} must be above 0 (DistilBERT: 2)")
        self.temperature = temperature

    def __call__(
        self, batch: dict[str, torch.Tensor], student: StepOutput, teacher: TeacherOutput | None
    ) -> torch.Tensor:
        assert teacher is not None
        chosen = masked_positions(batch, "mlm_soft_targets")
        check_vocabulary_logits(student, "student", "mlm_soft_targets")
        check_vocabulary_logits(teacher, "teacher", "mlm_soft_targets")
        if student.logits.shape[-1] != teacher.logits.shape[-1]:
            raise DistillError(
                f"objectives: mlm_soft_targets needs one vocabulary; the teacher has "
                f"{teacher.logits.shape[-1]:,} entries and the student {student.logits.shape[-1]:,}"
            )
        if not chosen.any():
            return student.logits.sum() * 0.0
        return masked_soft_target_loss(
            student.logits[chosen], teacher.logits[chosen], self.temperature
        )
