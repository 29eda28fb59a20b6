"""MSE between mapped hidden states: TinyBERT's hidden-state loss and PKD's patient loss.

Jiao et al. 2020, "TinyBERT": MSE(h_s W_h, h_t) summed over mapped layers.
Sun et al. 2019, "Patient Knowledge Distillation": squared distance between the normalised
[CLS] vectors of mapped layers (`cls_only: true, normalize: true`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from distill.errors import DistillError
from distill.models.outputs import StepOutput, TeacherOutput
from distill.objectives.base import Access, Shapes, masked_mean
from distill.objectives.layer_map import parse_layer_map, resolve_layer_map
from distill.objectives.projection import check_projection, make_projection


def hidden_mse_loss(
    student_hidden: torch.Tensor,
    teacher_hidden: torch.Tensor,
    attention_mask: torch.Tensor,
    cls_only: bool = False,
    normalize: bool = False,
) -> torch.Tensor:
    """One layer pair's loss, averaged over non-padding tokens.

    Args:
        student_hidden, teacher_hidden: `[batch, seq, hidden]` at the same width.
        cls_only: compare only position 0 ([CLS]).
        normalize: PKD: compare unit vectors and sum the squared differences over the hidden
            dimension (a value in [0, 4] per vector); otherwise the mean over it (TinyBERT).
    """
    student_hidden, teacher_hidden = student_hidden.float(), teacher_hidden.float()
    if cls_only:
        student_hidden, teacher_hidden = student_hidden[:, :1], teacher_hidden[:, :1]
        attention_mask = attention_mask[:, :1]
    if normalize:
        student_hidden = F.normalize(student_hidden, dim=-1)
        teacher_hidden = F.normalize(teacher_hidden, dim=-1)
        per_token = (student_hidden - teacher_hidden).pow(2).sum(-1)
    else:
        per_token = (student_hidden - teacher_hidden).pow(2).mean(-1)
    return masked_mean(per_token, attention_mask)


class HiddenMSEObjective(torch.nn.Module):
    """Sum over the layer map of `hidden_mse_loss`, through a projection when the student is
    narrower. Needs teacher hidden states: the teacher runs live (or from the states cache)."""

    access = Access.STATES
    averaged_over = "tokens"  # a mean over real tokens (see objectives.base.AVERAGED_OVER)
    needs = frozenset({"hidden_states"})

    def __init__(
        self,
        layer_map: object = "uniform",
        projection: str = "auto",
        cls_only: bool = False,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        self.layer_map = parse_layer_map(layer_map, "params.layer_map")
        self.projection_mode = check_projection(projection, "params.projection")
        self.cls_only, self.normalize = bool(cls_only), bool(normalize)
        self.pairs: list[tuple[int, int]] = []
        self.projection: torch.nn.Module = torch.nn.Identity()

    def setup(self, shapes: Shapes, where: str) -> None:
        self.pairs = resolve_layer_map(
            self.layer_map, shapes.student_layers, shapes.teacher_layers, f"{where}.layer_map"
        )
        self.projection = make_projection(
            self.projection_mode, shapes.student_width, shapes.teacher_width, f"{where}.projection"
        )

    def cacheable_states(self, teacher_layers: int) -> frozenset[int]:
        """The teacher layers of the layer map (known after setup)."""
        return frozenset(t for _, t in self.pairs)

    def forward(
        self, batch: dict[str, torch.Tensor], student: StepOutput, teacher: TeacherOutput | None
    ) -> torch.Tensor:
        if not self.pairs:
            raise DistillError("hidden_mse: setup() was not called before training")
        assert teacher is not None and student.hidden_states and teacher.hidden_states
        mask = batch["attention_mask"]
        return sum(
            hidden_mse_loss(
                self.projection(student.hidden_states[s]),
                teacher.hidden_states[t],
                mask,
                self.cls_only,
                self.normalize,
            )
            for s, t in self.pairs
        )
