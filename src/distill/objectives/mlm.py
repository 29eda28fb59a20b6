"""The gold masked-language-model loss of general distillation (BERT, DistilBERT).

The corpus batches carry `mlm_labels`: the original token at each position BERT's 80/10/10
masking chose (15% of tokens), -100 elsewhere. The loss is the student's cross-entropy there,
averaged over those positions: the same term a BERT is pre-trained with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from distill.errors import DistillError
from distill.models.outputs import StepOutput, TeacherOutput
from distill.objectives.base import Access

IGNORED = -100  # mlm_labels at positions that were not chosen


def masked_positions(batch: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """`[batch, seq]` bool: the positions chosen for prediction."""
    labels = batch.get("mlm_labels")
    if labels is None:
        raise DistillError(
            f"objectives: {name} needs masked-LM batches; it trains on a corpus "
            "(distill pretrain), not on a task's rows"
        )
    return labels != IGNORED


def check_vocabulary_logits(output: StepOutput, which: str, name: str) -> None:
    if output.logits.dim() != 3:
        raise DistillError(
            f"objectives: {name} needs the {which}'s masked-LM head (logits per token over the "
            f"vocabulary), got logits of shape {tuple(output.logits.shape)}"
        )


class MaskedLMObjective:
    """Cross-entropy of the student's vocabulary logits at the masked positions."""

    access = Access.NONE
    averaged_over = "masked_tokens"
    corpus_only = True  # task recipes refuse it (teacher.plan.prepare)

    def __call__(
        self, batch: dict[str, torch.Tensor], student: StepOutput, teacher: TeacherOutput | None
    ) -> torch.Tensor:
        chosen = masked_positions(batch, "mlm")
        check_vocabulary_logits(student, "student", "mlm")
        if not chosen.any():  # a block can draw no position: a differentiable zero
            return student.logits.sum() * 0.0
        logits = student.logits[chosen].float()  # [positions, vocab]
        return F.cross_entropy(logits, batch["mlm_labels"][chosen])
