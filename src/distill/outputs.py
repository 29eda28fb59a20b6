"""One structure for what any model gives the objectives, so objectives never see model classes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch


@dataclass
class ModelOutput:
    """Outputs of a student or teacher forward pass.

    Attributes:
        logits: `[batch, num_labels]` (`[batch, 1]` for regression).
        attention_mask: `[batch, seq]`, 1 for real tokens.
        hidden_states: transformers' tuple: index 0 the embedding output, i the output of
            block i, each `[batch, seq, hidden]`; None when not requested or served from cache.
        attentions: per block `[batch, heads, seq, seq]` softmax maps, or None.
        attention_scores: per block the pre-softmax scores `q k^T / sqrt(d)`, without the
            padding mask, or None.
        members: for an ensemble of teachers, each teacher's own outputs by name (objectives
            that follow one named teacher read these); `logits` is then the combination.
    """

    logits: torch.Tensor
    attention_mask: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    attention_scores: tuple[torch.Tensor, ...] | None = None
    members: dict[str, ModelOutput] | None = None

    def detached(self) -> ModelOutput:
        """The same outputs cut from the graph: a model trained in the same step (co-
        distillation, early exits) teaches through these without receiving gradient."""

        def cut(value: object) -> object:
            if isinstance(value, torch.Tensor):
                return value.detach()
            if isinstance(value, tuple):
                return tuple(cut(v) for v in value)
            return value

        return dataclasses.replace(
            self, **{f.name: cut(getattr(self, f.name)) for f in dataclasses.fields(self)}
        )

    @classmethod
    def from_transformers(cls, output: object, attention_mask: torch.Tensor) -> ModelOutput:
        """Adapt a transformers ModelOutput (SequenceClassifierOutput and kin)."""
        return cls(
            logits=output.logits,
            attention_mask=attention_mask,
            hidden_states=getattr(output, "hidden_states", None),
            attentions=getattr(output, "attentions", None) or None,
        )


# The names the objective protocol uses (DESIGN.md): both sides share one structure.
StepOutput = ModelOutput
TeacherOutput = ModelOutput
