"""Attention distillation, per head, over a layer map.

loss: mse  TinyBERT (Jiao et al. 2020): MSE between the pre-softmax attention scores, summed
           over mapped layers (default map: uniform).
loss: kl   MiniLM (Wang et al. 2020): KL(teacher || student) between the self-attention
           distributions, averaged over heads and query tokens (default map: final, the last
           layer only).
Heads: equal counts are compared head by head; when the teacher has k times the student's
heads, each group of k consecutive teacher heads is averaged (`head_map: auto`); `head_map: mean`
averages all heads on both sides. Padding is excluded as query and as key.
"""

from __future__ import annotations

import torch

from distill.errors import DistillError
from distill.models.outputs import StepOutput, TeacherOutput
from distill.objectives.base import Access, Shapes
from distill.objectives.layer_map import parse_layer_map, resolve_layer_map

_EPS = 1e-12


def map_heads(maps: torch.Tensor, heads: int) -> torch.Tensor:
    """Average `[batch, H, q, k]` down to `heads` groups of consecutive heads."""
    batch, total, queries, keys = maps.shape
    return maps.reshape(batch, heads, total // heads, queries, keys).mean(dim=2)


def _pair_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """`[batch, 1, q, k]`: 1 where both the query and the key are real tokens."""
    mask = attention_mask.float()
    return (mask[:, :, None] * mask[:, None, :])[:, None]


def attention_mse_loss(
    student_scores: torch.Tensor, teacher_scores: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Mean squared difference over heads and real (query, key) pairs; `[batch, H, q, k]` in."""
    pairs = _pair_mask(attention_mask).expand_as(student_scores)
    squared = (student_scores.float() - teacher_scores.float()).pow(2) * pairs
    return squared.sum() / pairs.sum().clamp(min=1.0)


def attention_kl_loss(
    student_probs: torch.Tensor, teacher_probs: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """KL(teacher row || student row) summed over real keys, averaged over heads and real
    queries; `[batch, H, q, k]` softmax maps in."""
    pairs = _pair_mask(attention_mask)
    teacher_probs, student_probs = teacher_probs.float(), student_probs.float()
    terms = teacher_probs * (
        teacher_probs.clamp(min=_EPS).log() - student_probs.clamp(min=_EPS).log()
    )
    per_row = (terms * pairs).sum(-1)  # [batch, H, q]
    rows = attention_mask.float()[:, None, :].expand_as(per_row)
    return per_row.sum() / rows.sum().clamp(min=1.0)


class AttentionObjective:
    access = Access.STATES

    def __init__(self, loss: str = "mse", layer_map: object = None, head_map: str = "auto") -> None:
        if loss not in ("mse", "kl"):
            raise DistillError(
                f"params.loss: '{loss}' is not allowed; choose 'mse' (TinyBERT, pre-softmax "
                "scores) or 'kl' (MiniLM, attention distributions)"
            )
        if head_map not in ("auto", "mean"):
            raise DistillError(f"params.head_map: '{head_map}' is not allowed; choose auto or mean")
        self.loss, self.head_map = loss, head_map
        # mse: a mean over real (query, key) pairs; kl: over real query rows
        self.averaged_over = "token_pairs" if loss == "mse" else "tokens"
        default_map = "uniform" if loss == "mse" else "final"
        self.layer_map = parse_layer_map(
            default_map if layer_map is None else layer_map, "params.layer_map"
        )
        self.needs = frozenset({"attention_scores" if loss == "mse" else "attentions"})
        self.pairs: list[tuple[int, int]] = []
        self.heads = 0

    def setup(self, shapes: Shapes, where: str) -> None:
        self.pairs = resolve_layer_map(
            self.layer_map,
            shapes.student_layers,
            shapes.teacher_layers,
            f"{where}.layer_map",
            first=1,  # the embedding output has no attention map
        )
        student, teacher = shapes.student_heads, shapes.teacher_heads
        if self.head_map == "mean":
            self.heads = 1
        elif teacher % student:
            raise DistillError(
                f"{where}.head_map: the teacher has {teacher} attention heads and the student "
                f"{student}; 'auto' needs the teacher's count to be a multiple of the "
                "student's: use head_map: mean (average all heads) or a student with "
                "a divisor of the teacher's head count"
            )
        else:
            self.heads = student

    def __call__(
        self, batch: dict[str, torch.Tensor], student: StepOutput, teacher: TeacherOutput | None
    ) -> torch.Tensor:
        if not self.pairs:
            raise DistillError("attention: setup() was not called before training")
        assert teacher is not None
        kind = "attention_scores" if self.loss == "mse" else "attentions"
        student_maps, teacher_maps = getattr(student, kind), getattr(teacher, kind)
        assert student_maps and teacher_maps, "the trainer must request the objective's needs"
        loss_fn = attention_mse_loss if self.loss == "mse" else attention_kl_loss
        mask = batch["attention_mask"]
        total = torch.zeros((), device=mask.device)
        for s, t in self.pairs:  # hidden-state index i is the output of block i: map i-1
            total = total + loss_fn(
                map_heads(student_maps[s - 1], self.heads),
                map_heads(teacher_maps[t - 1], self.heads),
                mask,
            )
        return total
