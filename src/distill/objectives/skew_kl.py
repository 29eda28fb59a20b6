"""Skew KL per response token (DistiLLM, Ko et al. 2024): the KL against a mixture, which
stays finite and well-conditioned where the student gives a token almost no mass.
`forward`: KL(teacher || alpha * teacher + (1 - alpha) * student);
`reverse`: KL(student || alpha * student + (1 - alpha) * teacher). alpha = 0 is the plain KL;
DistiLLM uses 0.1."""

from __future__ import annotations

from typing import Literal

import torch

from distill.errors import DistillError
from distill.objectives.token_level import TokenDivergenceObjective, kl, mixture


class SkewKLObjective(TokenDivergenceObjective):
    name = "skew_kl"

    def __init__(
        self,
        alpha: float = 0.1,
        direction: Literal["forward", "reverse"] = "forward",
        temperature: float = 1.0,
        chunk: int = 512,
    ) -> None:
        super().__init__(temperature, chunk)
        if not 0.0 <= alpha < 1.0:
            raise DistillError(f"params.alpha: {alpha} must be in [0, 1) (DistiLLM: 0.1)")
        if direction not in ("forward", "reverse"):
            raise DistillError(f"params.direction: '{direction}' is not forward or reverse")
        self.alpha, self.direction = alpha, direction

    def divergence(self, teacher_log: torch.Tensor, student_log: torch.Tensor) -> torch.Tensor:
        if self.direction == "forward":
            return kl(teacher_log, mixture(teacher_log, student_log, self.alpha))
        return kl(student_log, mixture(student_log, teacher_log, self.alpha))
