"""Embedding-layer distillation (TinyBERT's L_embd): match the embedding outputs,
`hidden_states[0]`, by MSE or cosine, through a projection when the student is narrower."""

from __future__ import annotations

import torch

from distill.errors import DistillError
from distill.models.outputs import StepOutput, TeacherOutput
from distill.objectives.base import Access, Shapes
from distill.objectives.hidden_cosine import hidden_cosine_loss
from distill.objectives.hidden_mse import hidden_mse_loss
from distill.objectives.projection import check_projection, make_projection


class EmbeddingsObjective(torch.nn.Module):
    access = Access.STATES
    averaged_over = "tokens"  # a mean over real tokens (see objectives.base.AVERAGED_OVER)
    needs = frozenset({"hidden_states"})

    def __init__(self, loss: str = "mse", projection: str = "auto") -> None:
        super().__init__()
        if loss not in ("mse", "cosine"):
            raise DistillError(f"params.loss: '{loss}' is not allowed; choose 'mse' or 'cosine'")
        self.loss = loss
        self.projection_mode = check_projection(projection, "params.projection")
        self.projection: torch.nn.Module = torch.nn.Identity()

    def setup(self, shapes: Shapes, where: str) -> None:
        self.projection = make_projection(
            self.projection_mode, shapes.student_width, shapes.teacher_width, f"{where}.projection"
        )

    def cacheable_states(self, teacher_layers: int) -> frozenset[int]:
        """The embedding output, hidden_states[0]."""
        return frozenset({0})

    def forward(
        self, batch: dict[str, torch.Tensor], student: StepOutput, teacher: TeacherOutput | None
    ) -> torch.Tensor:
        assert teacher is not None and student.hidden_states and teacher.hidden_states
        student_embeddings = self.projection(student.hidden_states[0])
        teacher_embeddings = teacher.hidden_states[0]
        mask = batch["attention_mask"]
        if self.loss == "cosine":
            return hidden_cosine_loss(student_embeddings, teacher_embeddings, mask)
        return hidden_mse_loss(student_embeddings, teacher_embeddings, mask)
