"""Several frozen teachers as one: the student learns their weighted mixture of distributions."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from distill.config.recipe import NamedTeacher
from distill.errors import DistillError
from distill.models.outputs import TeacherOutput
from distill.training.loop import TeacherSource


def combine_logits(logits: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """Logits of the mixture sum_i w_i softmax(z_i): log sum_i w_i softmax(z_i), so that
    softmax of the result is the mixture and every logits objective (soft targets at any
    temperature, hard labels) reads the ensemble as one teacher. Regression: the weighted mean.
    """
    if logits[0].shape[-1] == 1:
        return sum(w * z.float() for z, w in zip(logits, weights, strict=True))
    terms = [
        F.log_softmax(z.float(), dim=-1) + math.log(w) for z, w in zip(logits, weights, strict=True)
    ]
    return torch.logsumexp(torch.stack(terms), dim=0)


def teacher_weights(teachers: list[NamedTeacher], where: list[str]) -> list[float]:
    """Each teacher's share of the mixture: as given (normalised to sum 1), or equal."""
    given = [t.weight for t in teachers]
    if all(w is None for w in given):
        return [1.0 / len(teachers)] * len(teachers)
    missing = [field for field, w in zip(where, given, strict=True) if w is None]
    if missing:
        raise DistillError(
            f"{missing[0]}.weight: give every teacher of this task a weight, or none (equal)"
        )
    total = sum(w for w in given if w is not None)
    return [w / total for w in given if w is not None]


class EnsembleTeacher:
    """Calls each member (cached or live) once per batch. `logits` is the weighted mixture;
    `members` holds every teacher's own outputs for objectives that follow one of them."""

    def __init__(self, sources: dict[str, TeacherSource], weights: list[float]) -> None:
        self.sources = sources
        self.weights = weights

    @property
    def models(self) -> list[torch.nn.Module]:
        """The live members' models (moved to the training device by the trainer)."""
        return [s.model for s in self.sources.values() if hasattr(s, "model")]

    def __call__(self, batch: dict[str, torch.Tensor]) -> TeacherOutput:
        members = {name: source(batch) for name, source in self.sources.items()}
        logits = combine_logits([m.logits for m in members.values()], self.weights)
        return TeacherOutput(logits=logits, attention_mask=batch["attention_mask"], members=members)
