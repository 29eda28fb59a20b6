"""The ordinary task loss of a causal-LM task: next-token cross-entropy on the response tokens
of the references (supervised fine-tuning). In an `instruction` recipe the objective `task`
is this one."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from distill.models.outputs import StepOutput, TeacherOutput
from distill.objectives.base import Access
from distill.objectives.token_level import check_logits, response_positions


class NextTokenObjective:
    access = Access.NONE
    averaged_over = "response_tokens"
    causal_lm_only = True

    def __call__(
        self, batch: dict[str, torch.Tensor], student: StepOutput, teacher: TeacherOutput | None
    ) -> torch.Tensor:
        logits = check_logits(student.logits, "student", "next_token")
        positions = response_positions(batch, "next_token")
        if not positions.any():
            return logits.sum() * 0.0
        targets = torch.zeros_like(batch["labels"])
        targets[:, :-1] = batch["labels"][:, 1:]  # position t predicts token t + 1
        return F.cross_entropy(logits[positions].float(), targets[positions])
