"""Interchange intervention training, IIT (Wu et al. 2022, "Causal Distillation for Language
Models"; Geiger et al. 2022, "Inducing Causal Structure for Interpretable Neural Networks").

The student must match the teacher not only on real inputs but under interventions: for an
aligned pair (teacher layer or group of layers, student layer) and a set of token positions,
each model runs on a base batch while its representation at those positions is replaced by the
one it computed for a source sentence. The loss makes the student's counterfactual outputs match
the teacher's: KL with temperature x T^2 (MSE for regression), plus optionally a cosine between
the intervened last hidden states (the reference's `causal_cos`), projected to the teacher's
width when the student is narrower.

Each model swaps in its own source states, so the swap itself works at any width. With
`source: shuffle` (default) the source of each sentence is another sentence of the same batch,
and the clean passes the other objectives use double as the source runs: a step costs one clean
and one intervened pass of each model. `source: batch` draws a second batch (two more passes).
Positions are the same indices in base and source, among tokens real in both: a contiguous
`span` covering `share` of the shorter sentence (the reference's default, 30%), `all`, `cls`, or
a `random` subset of `share` of them.
"""

from __future__ import annotations

import math
import random
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from distill.errors import DistillError
from distill.models.capture import forward
from distill.models.interventions import block_output, interchange
from distill.models.outputs import StepOutput, TeacherOutput
from distill.objectives.base import Access, Shapes, StepModels
from distill.objectives.hidden_cosine import hidden_cosine_loss
from distill.objectives.projection import check_projection, make_projection
from distill.objectives.soft_targets import soft_target_loss

POSITIONS = ("span", "all", "cls", "random")
SOURCES = ("shuffle", "batch")
Alignment = tuple[int, tuple[int, ...]]  # (student layer, teacher layers), hidden-state indices


def choose_positions(
    base_mask: torch.Tensor,
    source_mask: torch.Tensor,
    how: str,
    share: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """`[batch, seq]` bool: where to swap, among positions that are real tokens in both base
    and source (right padding, so those are a prefix of each row)."""
    valid = base_mask.bool() & source_mask.bool()
    if how == "all":
        return valid
    if how == "cls":
        positions = torch.zeros_like(valid)
        positions[:, 0] = valid[:, 0]
        return positions
    lengths = valid.sum(-1)
    steps = torch.arange(valid.shape[1], device=valid.device)[None, :]
    if how == "random":
        draws = torch.rand(valid.shape, generator=generator).to(valid.device)
        positions = (draws < share) & valid
        # every sentence with a real token gets at least one swap
        first = (torch.rand(lengths.shape, generator=generator).to(valid.device) * lengths).long()
        empty = positions.sum(-1) == 0
        positions |= empty[:, None] & (steps == first[:, None]) & valid
        return positions
    span = (share * lengths).floor().long().clamp(min=1)
    room = (lengths - span + 1).clamp(min=1)
    start = (torch.rand(lengths.shape, generator=generator).to(valid.device) * room).long()
    return (steps >= start[:, None]) & (steps < (start + span)[:, None]) & valid


def _fit(states: torch.Tensor, length: int) -> torch.Tensor:
    """Crop or zero-pad `[batch, seq, ...]` to `length` positions."""
    if states.shape[1] >= length:
        return states[:, :length]
    padding = torch.zeros(
        (states.shape[0], length - states.shape[1], *states.shape[2:]),
        dtype=states.dtype,
        device=states.device,
    )
    return torch.cat([states, padding], dim=1)


class InterchangeInterventionObjective(torch.nn.Module):
    access = Access.INTERVENE
    needs = frozenset({"hidden_states"})

    def __init__(
        self,
        temperature: float = 2.0,
        alignments: list[dict[str, Any]] | None = None,
        positions: str = "span",
        share: float = 0.3,
        source: str = "shuffle",
        interventions: int = 1,
        hidden_weight: float = 0.0,
        projection: str = "auto",
    ) -> None:
        super().__init__()
        if positions not in POSITIONS:
            raise DistillError(
                f"params.positions: '{positions}' is not allowed; choose {POSITIONS}"
            )
        if source not in SOURCES:
            raise DistillError(f"params.source: '{source}' is not allowed; choose {SOURCES}")
        if not 0 < share <= 1:
            raise DistillError(f"params.share: {share} must be in (0, 1], e.g. 0.3")
        if not isinstance(interventions, int) or interventions < 1:
            raise DistillError(f"params.interventions: {interventions!r} must be an integer >= 1")
        self.temperature, self.positions, self.share = temperature, positions, share
        self.source, self.interventions = source, interventions
        self.hidden_weight = float(hidden_weight)
        self.projection_mode = check_projection(projection, "params.projection")
        self.written_alignments = _parse_alignments(alignments)
        self.alignments: list[Alignment] = []
        self.projection: torch.nn.Module = torch.nn.Identity()
        self.models: StepModels | None = None

    # -- setup ------------------------------------------------------------------------------
    def setup(self, shapes: Shapes, where: str) -> None:
        m, n = shapes.student_layers, shapes.teacher_layers
        if self.written_alignments is None:  # the middle layers (the reference: 6 <-> 3 of 12/6)
            student = math.ceil(m / 2)
            self.alignments = [(student, (round(student * n / m),))]
        else:
            self.alignments = self.written_alignments
        for student, teachers in self.alignments:
            for index, total, side in [(student, m, "student")] + [
                (t, n, "teacher") for t in teachers
            ]:
                if not 1 <= index <= total:
                    raise DistillError(
                        f"{where}.alignments: {side} layer {index} is out of range; the {side} "
                        f"has {total} blocks, so use 1..{total} (i = output of block i, "
                        "counted from 1)"
                    )
        if self.hidden_weight > 0:
            self.projection = make_projection(
                self.projection_mode,
                shapes.student_width,
                shapes.teacher_width,
                f"{where}.projection",
            )

    def bind(self, models: StepModels) -> None:
        self.models = models
        self.generator = torch.Generator().manual_seed(models.seed)
        self.choice = random.Random(models.seed)

    def rng_state(self) -> dict[str, Any]:
        """Its random draws so far, for a checkpoint (resumed runs draw the same sources)."""
        return {"generator": self.generator.get_state(), "choice": self.choice.getstate()}

    def set_rng_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.choice.setstate(state["choice"])

    # -- one step -----------------------------------------------------------------------------
    def forward(
        self, batch: dict[str, torch.Tensor], student: StepOutput, teacher: TeacherOutput | None
    ) -> torch.Tensor:
        if self.models is None or not self.alignments:
            raise DistillError("iit: setup() and bind() must run before training")
        assert teacher is not None and student.hidden_states and teacher.hidden_states
        total = torch.zeros((), device=student.logits.device)
        for _ in range(self.interventions):
            total = total + self._one(batch, student, teacher)
        return total / self.interventions

    def _one(
        self, batch: dict[str, torch.Tensor], student: StepOutput, teacher: TeacherOutput
    ) -> torch.Tensor:
        models = self.models
        assert models is not None
        student_layer, teacher_layers = self.alignments[self.choice.randrange(len(self.alignments))]
        mask = batch["attention_mask"]
        size, length = mask.shape
        if self.source == "shuffle":
            order = self._derangement(size).to(mask.device)
            source_mask = mask[order]
            student_source = student.hidden_states[student_layer][order]
            teacher_sources = {t: teacher.hidden_states[t][order] for t in teacher_layers}
        else:
            source_batch = models.draw_batch(size)
            with torch.no_grad():
                teacher_run = forward(models.teacher, source_batch, self.needs)
            student_run = forward(models.student, source_batch, self.needs)
            source_mask = _fit(source_batch["attention_mask"], length)
            student_source = _fit(student_run.hidden_states[student_layer], length)
            teacher_sources = {
                t: _fit(teacher_run.hidden_states[t], length) for t in teacher_layers
            }
        positions = choose_positions(mask, source_mask, self.positions, self.share, self.generator)

        with torch.no_grad(), interchange(models.teacher, teacher_sources, positions):
            with self._last_states(models.teacher) as teacher_last:
                teacher_logits = forward(models.teacher, batch, frozenset()).logits
        with interchange(models.student, {student_layer: student_source}, positions):
            with self._last_states(models.student) as student_last:
                student_logits = forward(models.student, batch, frozenset()).logits
        loss = soft_target_loss(student_logits, teacher_logits, self.temperature)
        if self.hidden_weight > 0:
            loss = loss + self.hidden_weight * hidden_cosine_loss(
                self.projection(student_last[-1]), teacher_last[-1], mask
            )
        return loss

    def _last_states(self, model: torch.nn.Module) -> AbstractContextManager[list[torch.Tensor]]:
        """The intervened last hidden states, when the cosine term needs them."""
        if self.hidden_weight <= 0:
            return nullcontext([])
        config = getattr(model, "module", model).config
        return block_output(model, config.num_hidden_layers)

    def _derangement(self, size: int) -> torch.Tensor:
        """A permutation with no fixed point (for size >= 2): each sentence gets another's
        states."""
        shuffled = torch.randperm(size, generator=self.generator)
        order = torch.empty_like(shuffled)
        order[shuffled] = shuffled.roll(-1)
        return order


def _parse_alignments(alignments: Any) -> list[Alignment] | None:
    if alignments is None:
        return None
    example = "e.g. [{teacher: 4, student: 2}] or [{teacher: [3, 4], student: 2}]"
    if not isinstance(alignments, list) or not alignments:
        raise DistillError(f"params.alignments: expected a non-empty list, {example}")
    parsed = []
    for item in alignments:
        teachers = item.get("teacher") if isinstance(item, dict) else None
        teachers = [teachers] if isinstance(teachers, int) else teachers
        student = item.get("student") if isinstance(item, dict) else None
        if (
            not isinstance(item, dict)
            or set(item) != {"teacher", "student"}
            or not isinstance(student, int)
            or not isinstance(teachers, list)
            or not teachers
            or not all(isinstance(t, int) for t in teachers)
        ):
            raise DistillError(f"params.alignments: {item!r} is not an alignment; {example}")
        parsed.append((student, tuple(teachers)))
    return parsed
