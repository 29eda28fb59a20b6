"""The Objective protocol, the teacher-access levels the execution plan is built from, and the
shapes objectives check their layer maps against."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol, runtime_checkable

import torch

from distill.data.instructions import predicting_response
from distill.models.outputs import StepOutput, TeacherOutput

# What a forward pass can be asked for beyond logits (an objective's `needs`):
# "hidden_states" (transformers' tuple), "attentions" (softmax maps: eager attention) and
# "attention_scores" (pre-softmax scores, captured by a registered attention function) and
# "attention_qkv" (each block's projected queries, keys and values, captured the same way).
OUTPUT_KINDS = frozenset({"hidden_states", "attentions", "attention_scores", "attention_qkv"})


class Access(IntEnum):
    """How much of the teacher an objective needs; ordered, so a recipe needs the maximum."""

    NONE = 0  # gold labels only (the task loss)
    LABELS = 1  # the teacher's argmax labels
    LOGITS = 2  # the teacher's output scores
    STATES = 3  # hidden states / attentions
    INTERVENE = 4  # forward passes with interventions (IIT)


@runtime_checkable
class Objective(Protocol):
    """One term of the loss. `__call__` returns a scalar; the trainer weights and sums them.

    Optional members, read with getattr so that a minimal plug-in needs only `access`:
      needs: frozenset of OUTPUT_KINDS the student and teacher forward passes must return.
      setup(shapes, where): check layer maps against the real models and build projections;
        called once before training (errors name `where`, e.g. "objectives[2].params").
      bind(models): for `intervene` objectives, the models and batches a step may re-run.
      cacheable_states(teacher_layers): the teacher `hidden_states` indices it reads (after
        setup), when those alone serve it: then they can come from the states cache.
      averaged_over: what its value is a mean over, a key of AVERAGED_OVER (default examples).
      rng_state() / set_rng_state(state): its own random draws, saved in checkpoints.
    An objective that is a torch.nn.Module has its parameters (projections) trained with the
    student and never saved with it.
    """

    access: Access

    def __call__(
        self, batch: dict[str, torch.Tensor], student: StepOutput, teacher: TeacherOutput | None
    ) -> torch.Tensor: ...


@dataclass(frozen=True)
class Shapes:
    """Sizes of the two models, from their configs (known before any training starts)."""

    student_layers: int
    teacher_layers: int
    student_width: int
    teacher_width: int
    student_heads: int
    teacher_heads: int

    @classmethod
    def of(cls, student_config: Any, teacher_config: Any) -> Shapes:
        return cls(
            student_layers=student_config.num_hidden_layers,
            teacher_layers=teacher_config.num_hidden_layers,
            student_width=student_config.hidden_size,
            teacher_width=teacher_config.hidden_size,
            student_heads=student_config.num_attention_heads,
            teacher_heads=teacher_config.num_attention_heads,
        )


@dataclass
class StepModels:
    """What an `intervene` objective may run again inside a training step.

    Attributes:
        student: the student as the trainer calls it (possibly wrapped by accelerate).
        teacher: the frozen teacher, in eval mode.
        draw_batch: returns `n` random training examples, collated, on the training device.
        seed: for the objective's own random choices (alignments, positions), so runs repeat.
    """

    student: torch.nn.Module
    teacher: torch.nn.Module
    draw_batch: Callable[[int], dict[str, torch.Tensor]]
    seed: int = 0


def needs_of(objective: object) -> frozenset[str]:
    return frozenset(getattr(objective, "needs", frozenset()))


# What an objective's value is a mean over. Micro-batches (gradient accumulation) and processes
# weigh their value by their share of this count in the whole step, so the update equals that
# of one big batch even when micro-batches hold different numbers of tokens.
AVERAGED_OVER: dict[str, Callable[[dict[str, torch.Tensor]], float]] = {
    "examples": lambda batch: float(batch["input_ids"].shape[0]),
    "tokens": lambda batch: float(batch["attention_mask"].sum()),
    "token_pairs": lambda batch: float(batch["attention_mask"].sum(-1).pow(2).sum()),
    "masked_tokens": lambda batch: float((batch["mlm_labels"] != -100).sum()),
    # causal LMs: logit positions whose next token is a response token (labels shifted by one)
    "response_tokens": lambda batch: float(predicting_response(batch["labels"]).sum()),
}


def averaging_count(objective: object, batch: dict[str, torch.Tensor]) -> float:
    return AVERAGED_OVER[getattr(objective, "averaged_over", "examples")](batch)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` `[batch, seq]` over positions where `mask` is 1; 0 (not NaN) if none."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


@dataclass
class WeightedObjective:
    """An objective as the recipe weights it: the trainer sums `weight * objective(...)`."""

    name: str
    weight: float
    objective: Objective
    where: str = "objectives"  # the recipe field its errors name, e.g. objectives[2].params
    teacher: str | None = None  # with several teachers: the one it follows (None: combined)
