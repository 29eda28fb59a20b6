"""One structure for what any model gives the objectives, so objectives never see model classes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class TopKLogits:
    """A teacher's k largest logits per example, their classes and the log-sum-exp of all
    logits: what the cache keeps for many classes (a vocabulary) instead of every logit."""

    values: torch.Tensor  # [batch, k]
    indices: torch.Tensor  # [batch, k], long
    logsumexp: torch.Tensor  # [batch]
    classes: int

    def tail_logit(self) -> torch.Tensor:
        """`[batch]`: the logit each class outside the top k gets when the rest of the mass is
        spread evenly over them (the only assumption the sparse form makes)."""
        p_top = torch.exp(self.values.float() - self.logsumexp[:, None]).sum(dim=-1)
        rest = (1.0 - p_top).clamp(min=1e-12)
        others = max(self.classes - self.values.shape[-1], 1)
        return self.logsumexp + torch.log(rest) - float(np.log(others))

    def dense(self) -> torch.Tensor:
        """`[batch, classes]` logits whose softmax has the stored top-k probabilities and the
        rest of the mass spread evenly (for objectives that read dense logits)."""
        logits = self.tail_logit()[:, None].expand(-1, self.classes).clone()
        return logits.scatter(1, self.indices, self.values.float())


@dataclass
class TokenTopK:
    """A causal-LM teacher's k largest log-probabilities per token and their token ids,
    `[batch, seq, k]` each (what the causal-LM cache keeps instead of a vocabulary per token).
    The rest of the mass is 1 - sum(exp(log_probs))."""

    log_probs: torch.Tensor
    indices: torch.Tensor
    vocabulary: int | None = None  # the teacher's vocabulary size (a student may pad it)


@dataclass
class ModelOutput:
    """Outputs of a student or teacher forward pass.

    Attributes:
        logits: `[batch, num_labels]` (`[batch, 1]` for regression).
        attention_mask: `[batch, seq]`, 1 for real tokens.
        hidden_states: transformers' tuple: index 0 the embedding output, i the output of
            block i, each `[batch, seq, hidden]`; None when not requested. Served from the
            cache, only the cached layers are tensors and the others None.
        attentions: per block `[batch, heads, seq, seq]` softmax maps, or None.
        attention_scores: per block the pre-softmax scores `q k^T / sqrt(d)`, without the
            padding mask, or None.
        attention_qkv: per block the projected (queries, keys, values), each `[batch, heads,
            seq, head_dim]` (MiniLMv2's relations), or None.
        members: for an ensemble of teachers, each teacher's own outputs by name (objectives
            that follow one named teacher read these); `logits` is then the combination.
        top_k: a cached teacher's sparse logits (many classes); `logits` is then their dense
            form, and the soft-target loss reads the sparse one.
        token_top_k: a cached causal-LM teacher's top-k log-probabilities per token; `logits`
            is then None and token-level objectives compare on the k tokens plus the rest.
        logit_columns: a causal LM's logits for these sequence positions only (`logits` is
            `[batch, len(logit_columns), vocabulary]`): the response positions of the batch
            (models.capture.response_columns); None when `logits` covers every position.
    """

    logits: torch.Tensor
    attention_mask: torch.Tensor
    hidden_states: tuple[torch.Tensor | None, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    attention_scores: tuple[torch.Tensor, ...] | None = None
    attention_qkv: tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], ...] | None = None
    members: dict[str, ModelOutput] | None = None
    top_k: TopKLogits | None = None
    token_top_k: TokenTopK | None = None
    logit_columns: torch.Tensor | None = None

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
            # a model without a head (AutoModel) has none: general distillation's relations
            # and hidden states need no logits
            logits=getattr(output, "logits", None),  # type: ignore[arg-type]
            attention_mask=attention_mask,
            hidden_states=getattr(output, "hidden_states", None),
            attentions=getattr(output, "attentions", None) or None,
        )


# The names the objective protocol uses (DESIGN.md): both sides share one structure.
StepOutput = ModelOutput
TeacherOutput = ModelOutput
