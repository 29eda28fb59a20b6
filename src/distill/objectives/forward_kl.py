"""Forward KL per response token, KL(teacher || student): word-level knowledge distillation
for sequence models (Kim & Rush 2016; Hinton et al. 2015 per token). Mode-covering: the student
is pushed to put mass wherever the teacher does."""

from __future__ import annotations

import torch

from distill.objectives.token_level import TokenDivergenceObjective, kl


class ForwardKLObjective(TokenDivergenceObjective):
    name = "forward_kl"

    def divergence(self, teacher_log: torch.Tensor, student_log: torch.Tensor) -> torch.Tensor:
        return kl(teacher_log, student_log)
