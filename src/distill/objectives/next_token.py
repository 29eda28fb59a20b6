"""The ordinary task loss of a causal-LM task: next-token cross-entropy on the response tokens
of the references (supervised fine-tuning). In an `instruction` recipe the objective `task`
is this one."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from distill.errors import DistillError
from distill.models.outputs import StepOutput, TeacherOutput
from distill.objectives.base import Access
from distill.objectives.token_level import (
    at_columns,
    check_logits,
    covering_index,
    position_chunks,
    response_positions,
)


class NextTokenObjective:
    """`chunk`: response positions whose log-softmax over the vocabulary is computed at once;
    the whole `[positions, vocabulary]` in fp32 is never materialised (measured on task text:
    the unchunked loss made a student-only step slower and larger than a chunked KL step)."""

    access = Access.NONE
    averaged_over = "response_tokens"
    needs = frozenset({"response_logits"})  # the student's logits at response positions only
    causal_lm_only = True

    def __init__(self, chunk: int = 512) -> None:
        if chunk < 1:
            raise DistillError(f"params.chunk: {chunk} must be at least 1 position")
        self.chunk = chunk

    def __call__(
        self, batch: dict[str, torch.Tensor], student: StepOutput, teacher: TeacherOutput | None
    ) -> torch.Tensor:
        logits = check_logits(student.logits, "student", "next_token")
        positions = response_positions(batch, "next_token")
        index = covering_index(student.logit_columns, positions, "student", "next_token")
        count = int(positions.sum())
        if count == 0:
            return logits.sum() * 0.0
        targets = torch.zeros_like(batch["labels"])
        targets[:, :-1] = batch["labels"][:, 1:]  # position t predicts token t + 1
        total = logits.new_zeros((), dtype=torch.float32)
        for at in position_chunks(positions, self.chunk):
            predicted = logits[at_columns(at, index)].float()
            total = total + F.cross_entropy(predicted, targets[at], reduction="sum")
        return total / count
