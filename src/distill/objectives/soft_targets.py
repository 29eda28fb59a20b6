"""Soft targets: KL between temperature-softened teacher and student distributions.

Hinton, Vinyals and Dean 2015, "Distilling the Knowledge in a Neural Network".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from distill.models.outputs import StepOutput, TeacherOutput, TopKLogits
from distill.objectives.base import Access


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


def top_k_soft_target_loss(
    student_logits: torch.Tensor, top_k: TopKLogits, temperature: float
) -> torch.Tensor:
    """T^2 * KL over k + 1 buckets: the teacher's top-k classes and one bucket for the rest.

    The student's bucket probabilities are exact (its rest is the softmax mass outside the
    teacher's top k); the teacher's rest bucket at temperature T assumes its tail mass is
    spread evenly over the other classes. When k covers every class there is no rest bucket
    and this is the dense loss exactly.
    """
    student_log_probs = F.log_softmax(student_logits.float() / temperature, dim=-1)
    student_top = student_log_probs.gather(1, top_k.indices)
    teacher_buckets = top_k.values.float() / temperature
    others = top_k.classes - top_k.indices.shape[-1]
    if others > 0:
        outside = student_log_probs.scatter(1, top_k.indices, float("-inf"))
        student_top = torch.cat([student_top, torch.logsumexp(outside, dim=-1)[:, None]], dim=-1)
        rest = top_k.tail_logit() / temperature + math.log(others)
        teacher_buckets = torch.cat([teacher_buckets, rest[:, None]], dim=-1)
    teacher_log_probs = F.log_softmax(teacher_buckets, dim=-1)
    kl = (teacher_log_probs.exp() * (teacher_log_probs - student_top)).sum(dim=-1).mean()
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
        if teacher.top_k is not None:  # a cached teacher with many classes
            return top_k_soft_target_loss(student.logits, teacher.top_k, self.temperature)
        return soft_target_loss(student.logits, teacher.logits, self.temperature)
