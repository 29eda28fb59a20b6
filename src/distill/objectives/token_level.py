"""What every token-level objective of causal-LM distillation shares: which logit positions are
response tokens, the teacher's distribution there (dense logits, or a cache's top-k), and a
divergence summed over those positions in chunks.

Positions. A causal LM's logits at position t predict token t + 1. Batches carry `labels`
aligned with `input_ids` (transformers' convention): the token id on response tokens, -100 on
the prompt and on padding. The positions that count are therefore t with
`labels[t + 1] != -100` (data.instructions.predicting_response makes that shift).

Memory. Only the response positions are gathered, `chunk` of them at a time, so the objective
never holds both models' `[batch, seq, vocab]` distributions in float32 at once. The logits
themselves come out of the models for the batch's response positions only (the objectives
declare the need `response_logits`; models.capture.forward passes `logits_to_keep`), so a
model's logits are `[batch, columns, vocab]` with `logit_columns` saying which positions;
`column_index` maps a sequence position to its place there.

Sparse teacher. A cached teacher keeps the top k log-probabilities per token
(`TokenTopK`). Both distributions are then compared on k + 1 buckets: the teacher's k tokens
and one bucket for the rest of the vocabulary (the teacher's tail mass, and the student's mass
outside those k tokens). When k covers the vocabulary the tail is empty and the value equals
the dense one (tested).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from distill.data.instructions import predicting_response
from distill.errors import DistillError
from distill.models.outputs import StepOutput, TeacherOutput, TokenTopK
from distill.objectives.base import Access

# A divergence between two distributions given as log-probabilities `[n, buckets]`
# (teacher, student), one value per row `[n]`.
Divergence = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def response_positions(batch: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """`[batch, seq]` bool: logit positions whose next token is a response token."""
    labels = batch.get("labels")
    if labels is None or labels.dim() != 2:
        raise DistillError(
            f"objectives: {name} is a token-level objective for causal-LM tasks (instruction, "
            "text); it needs batches with per-token `labels`"
        )
    return predicting_response(labels)


def check_logits(logits: torch.Tensor | None, which: str, name: str) -> torch.Tensor:
    if logits is None or logits.dim() != 3:
        shape = None if logits is None else tuple(logits.shape)
        raise DistillError(
            f"objectives: {name} needs the {which}'s logits per token over the vocabulary "
            f"(a causal LM), got {shape}"
        )
    return logits


def column_index(columns: torch.Tensor | None, length: int) -> torch.Tensor | None:
    """`[length]`: where each sequence position's logits are in a model's output that holds
    the positions `columns` only (-1: not there); None when the output holds every position."""
    if columns is None:
        return None
    index = torch.full((length,), -1, dtype=torch.long, device=columns.device)
    index[columns] = torch.arange(len(columns), device=columns.device)
    return index


def at_columns(
    at: tuple[torch.Tensor, torch.Tensor], index: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, sequence positions) -> (rows, places in an output with `column_index` index)."""
    rows, columns = at
    return (rows, columns) if index is None else (rows, index[columns])


def covering_index(
    columns: torch.Tensor | None, positions: torch.Tensor, which: str, name: str
) -> torch.Tensor | None:
    """`column_index` of a model's logits, checked to hold every response position."""
    index = column_index(columns, positions.shape[1])
    if index is not None and bool((index[positions.any(dim=0)] < 0).any()):
        raise DistillError(
            f"objectives: {name} reads the {which}'s logits at every response position, and the "
            "model was run for fewer (its logit_columns miss some)"
        )
    return index


def position_chunks(
    positions: torch.Tensor, chunk: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Index tuples (rows, columns) of the True entries of `positions`, `chunk` at a time:
    what a loss over the vocabulary gathers per step, so that no `[positions, vocabulary]`
    tensor of all of them exists at once."""
    rows, columns = positions.nonzero(as_tuple=True)
    for start in range(0, len(rows), chunk):
        yield rows[start : start + chunk], columns[start : start + chunk]


def mean_divergence(
    batch: dict[str, torch.Tensor],
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    teacher_top_k: TokenTopK | None,
    divergence: Divergence,
    temperature: float,
    name: str,
    chunk: int = 512,
    student_columns: torch.Tensor | None = None,
    teacher_columns: torch.Tensor | None = None,
) -> torch.Tensor:
    """The mean over response positions of `divergence(teacher, student)`, computed `chunk`
    positions at a time; a differentiable zero when the batch has no response token.
    `*_columns`: the positions a model's logits hold (ModelOutput.logit_columns), None: all."""
    positions = response_positions(batch, name)
    check_logits(student_logits, "student", name)
    student_index = covering_index(student_columns, positions, "student", name)
    count = int(positions.sum())
    if count == 0:
        return student_logits.sum() * 0.0
    teacher_index = None
    if teacher_top_k is None:
        teacher_logits = check_logits(teacher_logits, "teacher", name)
        teacher_index = covering_index(teacher_columns, positions, "teacher", name)
        shared = teacher_logits.shape[-1]
    else:
        shared = teacher_top_k.vocabulary or student_logits.shape[-1]
    _check_vocabularies(student_logits.shape[-1], shared, name)
    # a padded student vocabulary (the same tokenizer, rows added for alignment) is compared
    # on the teacher's range: the padding ids are never real tokens
    student_logits = student_logits[..., :shared]
    total = student_logits.new_zeros((), dtype=torch.float32)
    for at in position_chunks(positions, chunk):
        student_at = student_logits[at_columns(at, student_index)]
        student = torch.log_softmax(student_at.float() / temperature, dim=-1)
        if teacher_top_k is None:
            assert teacher_logits is not None
            teacher_at = teacher_logits[at_columns(at, teacher_index)]
            teacher = torch.log_softmax(teacher_at.float() / temperature, dim=-1)
        else:  # the cache holds every position of the batch
            teacher, student = _buckets(
                teacher_top_k.log_probs[at].float(), teacher_top_k.indices[at], student
            )
        total = total + divergence(teacher, student).sum()
    return total / count


def _check_vocabularies(student: int, teacher: int, name: str) -> None:
    if student < teacher:
        raise DistillError(
            f"objectives: {name} compares distributions over one vocabulary; the teacher's "
            f"logits have {teacher:,} entries and the student's {student:,} (a padded "
            "vocabulary is aligned by the causal-LM runner before the objectives)"
        )


def _buckets(
    teacher_top: torch.Tensor, indices: torch.Tensor, student_log: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both distributions on k + 1 buckets: the teacher's k tokens, then everything else."""
    teacher_tail = torch.log1p(-teacher_top.exp().sum(-1).clamp(max=1.0 - 1e-7))
    student_top = student_log.gather(-1, indices.long())
    student_tail = torch.log1p(-student_top.exp().sum(-1).clamp(max=1.0 - 1e-7))
    if indices.shape[-1] >= student_log.shape[-1]:  # k covers the vocabulary: no tail
        teacher_tail = torch.full_like(teacher_tail, -torch.inf)
        student_tail = torch.full_like(student_tail, -torch.inf)
    teacher = torch.cat([teacher_top, teacher_tail[:, None]], dim=-1)
    student = torch.cat([student_top, student_tail[:, None]], dim=-1)
    return teacher, student


# -- divergences on log-probabilities `[n, buckets]` -> `[n]` ------------------------------------
def kl(p_log: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:
    """KL(p || q) = sum p (log p - log q); buckets where p = 0 add nothing."""
    p = p_log.exp()
    difference = torch.where(p > 0, p_log - q_log, torch.zeros_like(p_log))
    return (p * difference).sum(-1)


def mixture(p_log: torch.Tensor, q_log: torch.Tensor, weight_p: float) -> torch.Tensor:
    """log(w p + (1 - w) q), computed in log space (w = 0 or 1 gives q or p exactly)."""
    if weight_p <= 0.0:
        return q_log
    if weight_p >= 1.0:
        return p_log
    stacked = torch.stack([p_log + math.log(weight_p), q_log + math.log(1.0 - weight_p)])
    return torch.logsumexp(stacked, dim=0)


class TokenDivergenceObjective:
    """The shared shell of the token-level objectives: a subclass gives `divergence`.

    `temperature` softens both distributions (logits / T); unlike `soft_targets` there is no
    T^2 factor (TRL's GKD convention; the default T = 1 makes it moot). `chunk`: response
    positions per slice of the computation (memory, not the value)."""

    access = Access.LOGITS
    averaged_over = "response_tokens"  # normalised per response token over the whole step
    needs = frozenset({"response_logits"})  # both models' logits at response positions only
    causal_lm_only = True  # classification recipes refuse it (teacher.plan.prepare)
    name = "token_divergence"

    def __init__(self, temperature: float = 1.0, chunk: int = 512) -> None:
        if temperature <= 0:
            raise DistillError(f"temperature: {temperature} must be above 0 (usually 1)")
        if chunk < 1:
            raise DistillError(f"params.chunk: {chunk} must be at least 1 position")
        self.temperature, self.chunk = temperature, chunk

    def divergence(self, teacher_log: torch.Tensor, student_log: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(
        self, batch: dict[str, torch.Tensor], student: StepOutput, teacher: TeacherOutput | None
    ) -> torch.Tensor:
        assert teacher is not None
        return mean_divergence(
            batch,
            student.logits,
            teacher.logits,
            teacher.token_top_k,
            self.divergence,
            self.temperature,
            self.name,
            self.chunk,
            student.logit_columns,
            teacher.logit_columns,
        )
