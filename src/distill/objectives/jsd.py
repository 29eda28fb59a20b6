"""Generalized Jensen-Shannon divergence per response token, JSD(beta) of GKD (Agarwal et al.
2024): beta * KL(teacher || M) + (1 - beta) * KL(student || M), M = beta * teacher +
(1 - beta) * student. As in TRL's GKD trainer, beta = 0 is the forward KL and beta = 1 the
reverse KL: JSD(beta) / (beta (1 - beta)) tends to those as beta tends to 0 and 1 (tested), so
the two ends are its limits up to that scale; in between it is bounded by log 2."""

from __future__ import annotations

import torch

from distill.errors import DistillError
from distill.objectives.token_level import TokenDivergenceObjective, kl, mixture


class JSDObjective(TokenDivergenceObjective):
    name = "jsd"

    def __init__(self, beta: float = 0.5, temperature: float = 1.0, chunk: int = 512) -> None:
        super().__init__(temperature, chunk)
        if not 0.0 <= beta <= 1.0:
            raise DistillError(f"params.beta: {beta} must be in [0, 1] (GKD: 0.5)")
        self.beta = beta

    def divergence(self, teacher_log: torch.Tensor, student_log: torch.Tensor) -> torch.Tensor:
        if self.beta == 0.0:
            return kl(teacher_log, student_log)
        if self.beta == 1.0:
            return kl(student_log, teacher_log)
        middle = mixture(teacher_log, student_log, self.beta)
        return self.beta * kl(teacher_log, middle) + (1 - self.beta) * kl(student_log, middle)
