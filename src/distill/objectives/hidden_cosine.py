"""Cosine loss between the teacher's and the student's last hidden states (DistilBERT).

Sanh et al. 2019, "DistilBERT, a distilled version of BERT": aligns the directions of the
student and teacher hidden-state vectors, token by token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from distill.errors import DistillError
from distill.models.outputs import StepOutput, TeacherOutput
from distill.objectives.base import Access, masked_mean


def hidden_cosine_loss(
    student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Mean of 1 - cos(student, teacher) over non-padding tokens.

    Args:
        student_hidden, teacher_hidden: `[batch, seq, hidden]`, the same width.
        attention_mask: `[batch, seq]`, 1 for real tokens; all-padding gives 0, not NaN.
    """
    cosine = F.cosine_similarity(student_hidden.float(), teacher_hidden.float(), dim=-1)
    return masked_mean(1.0 - cosine, attention_mask)


class HiddenCosineObjective:
    """Needs the teacher's last hidden state: served from the states cache when it fits the
    disk budget, else by the teacher run live under no_grad."""

    access = Access.STATES
    averaged_over = "tokens"  # a mean over real tokens (see objectives.base.AVERAGED_OVER)
    needs = frozenset({"hidden_states"})

    def cacheable_states(self, teacher_layers: int) -> frozenset[int]:
        """The teacher's last hidden state (index `teacher_layers`) is all it reads."""
        return frozenset({teacher_layers})

    def __call__(
        self, batch: dict[str, torch.Tensor], student: StepOutput, teacher: TeacherOutput | None
    ) -> torch.Tensor:
        assert teacher is not None
        if student.hidden_states is None or teacher.hidden_states is None:
            raise DistillError("hidden_cosine: hidden states missing from a forward pass")
        student_last, teacher_last = student.hidden_states[-1], teacher.hidden_states[-1]
        if student_last.shape[-1] != teacher_last.shape[-1]:
            raise DistillError(
                f"objectives: hidden_cosine needs the same hidden size in teacher "
                f"({teacher_last.shape[-1]}) and student ({student_last.shape[-1]})"
            )
        return hidden_cosine_loss(student_last, teacher_last, batch["attention_mask"])
