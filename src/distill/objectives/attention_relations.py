"""Self-attention relation distillation (MiniLMv2, Wang et al. 2021).

For one teacher block and one student block, the projected queries, keys and values
(`[batch, seq, width]`, heads concatenated) are split into R *relation heads* of width d_r =
width / R, independent of either model's attention heads. Each gives a relation matrix
softmax(A A^T / sqrt(d_r)) per head, a distribution over keys for every query token. The loss is
KL(teacher || student) per row, averaged over relation heads and real query tokens, summed over
the relation types (Q-Q, K-K, V-V). Because only seq x seq matrices are compared, the student's
width and head count may differ from the teacher's; R must divide both widths.

Relations are O(seq^2) per head and layer, so they are never cached: the teacher runs live.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from distill.errors import DistillError
from distill.models.outputs import StepOutput, TeacherOutput
from distill.objectives.base import Access, Shapes
from distill.objectives.layer_map import parse_layer_map, resolve_layer_map

RELATIONS = {"query": 0, "key": 1, "value": 2}


def merge_heads(states: torch.Tensor) -> torch.Tensor:
    """`[batch, heads, seq, head_dim]` -> `[batch, seq, heads * head_dim]`."""
    batch, heads, seq, dim = states.shape
    return states.transpose(1, 2).reshape(batch, seq, heads * dim)


def relation_log_probs(
    vectors: torch.Tensor, relation_heads: int, attention_mask: torch.Tensor
) -> torch.Tensor:
    """`[batch, seq, width]` -> `[batch, R, seq, seq]` log-softmax of scaled dot products over
    real keys (padded keys get no probability)."""
    batch, seq, width = vectors.shape
    if width % relation_heads:
        raise DistillError(
            f"attention_relations: {relation_heads} relation heads do not divide a width of "
            f"{width} (keys and values of grouped-query attention are narrower); set "
            "params.relation_heads to a divisor of every width"
        )
    size = width // relation_heads
    split = vectors.float().reshape(batch, seq, relation_heads, size).transpose(1, 2)
    scores = split @ split.transpose(-1, -2) / math.sqrt(size)
    keys = attention_mask[:, None, None, :].bool()
    scores = scores.masked_fill(~keys, torch.finfo(scores.dtype).min)
    return F.log_softmax(scores, dim=-1)


def relation_kl(
    student: torch.Tensor, teacher: torch.Tensor, relation_heads: int, mask: torch.Tensor
) -> torch.Tensor:
    """KL(teacher || student) of one relation type, averaged over heads and real query rows."""
    teacher_log = relation_log_probs(teacher, relation_heads, mask)
    student_log = relation_log_probs(student, relation_heads, mask)
    keys = mask[:, None, None, :].float()
    per_row = (teacher_log.exp() * (teacher_log - student_log) * keys).sum(-1)  # [b, R, q]
    rows = mask[:, None, :].float().expand_as(per_row)
    return (per_row * rows).sum() / rows.sum().clamp(min=1.0)


class AttentionRelationsObjective:
    access = Access.STATES
    averaged_over = "tokens"  # a mean over real query tokens
    needs = frozenset({"attention_qkv"})

    def __init__(
        self,
        relation_heads: int | None = None,
        layer_map: object = None,
        relations: list[str] | None = None,
    ) -> None:
        if relation_heads is not None and relation_heads < 1:
            raise DistillError(f"params.relation_heads: {relation_heads} must be 1 or more")
        chosen = list(RELATIONS) if relations is None else relations
        unknown = [r for r in chosen if r not in RELATIONS]
        if unknown or not chosen:
            raise DistillError(
                f"params.relations: {unknown or chosen} not allowed; choose from query, key, value"
            )
        self.relations = [RELATIONS[r] for r in chosen]
        self.relation_heads = relation_heads
        self.layer_map = parse_layer_map(
            "final" if layer_map is None else layer_map, "params.layer_map"
        )
        self.pairs: list[tuple[int, int]] = []

    def setup(self, shapes: Shapes, where: str) -> None:
        self.pairs = resolve_layer_map(
            self.layer_map,
            shapes.student_layers,
            shapes.teacher_layers,
            f"{where}.layer_map",
            first=1,  # relations come from a block's attention: the embeddings have none
        )
        heads = self.relation_heads or shapes.teacher_heads
        widths = (shapes.teacher_width, shapes.student_width)
        if any(width % heads for width in widths):
            divisors = [d for d in range(1, max(widths) + 1) if all(w % d == 0 for w in widths)]
            raise DistillError(
                f"{where}.relation_heads: {heads} does not divide both widths (teacher "
                f"{widths[0]}, student {widths[1]}); choose one of {divisors[-8:]}"
            )
        self.relation_heads = heads

    def __call__(
        self, batch: dict[str, torch.Tensor], student: StepOutput, teacher: TeacherOutput | None
    ) -> torch.Tensor:
        if not self.pairs or self.relation_heads is None:
            raise DistillError("attention_relations: setup() was not called before training")
        assert teacher is not None
        if not student.attention_qkv or not teacher.attention_qkv:
            raise DistillError("attention_relations: queries, keys and values were not captured")
        mask = batch["attention_mask"]
        total = torch.zeros((), device=mask.device)
        for s, t in self.pairs:  # hidden-state index i is the output of block i
            for kind in self.relations:
                total = total + relation_kl(
                    merge_heads(student.attention_qkv[s - 1][kind]),
                    merge_heads(teacher.attention_qkv[t - 1][kind]),
                    self.relation_heads,
                    mask,
                )
        return total
