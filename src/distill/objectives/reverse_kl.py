"""Reverse KL per response token, KL(student || teacher) (MiniLLM, Gu et al. 2024, token-level
form). Mode-seeking: the student concentrates on the teacher's main modes instead of spreading
over every token the teacher allows."""

from __future__ import annotations

import torch

from distill.objectives.token_level import TokenDivergenceObjective, kl


class ReverseKLObjective(TokenDivergenceObjective):
    name = "reverse_kl"

    def divergence(self, teacher_log: torch.Tensor, student_log: torch.Tensor) -> torch.Tensor:
        return kl(student_log, teacher_log)
