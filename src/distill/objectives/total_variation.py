"""Total variation distance per response token, (1/2) sum |teacher - student|: symmetric and
bounded by 1 (one of the token-level distances DistiLLM and f-distill compare)."""

from __future__ import annotations

import torch

from distill.objectives.token_level import TokenDivergenceObjective


class TotalVariationObjective(TokenDivergenceObjective):
    name = "total_variation"

    def divergence(self, teacher_log: torch.Tensor, student_log: torch.Tensor) -> torch.Tensor:
        return 0.5 * (teacher_log.exp() - student_log.exp()).abs().sum(-1)
