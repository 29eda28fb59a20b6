"""Scores of a causal LM on held-out instruction rows that need no generation: response
perplexity against the references, and how often its next-token choice on the response is the
teacher's (token agreement)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from distill.data.batching import to_device
from distill.data.instructions import EncodedInstructions, InstructionBatches
from distill.models.capture import logits_at
from distill.objectives.token_level import response_positions


@dataclass
class ResponsePass:
    """One model's pass over every response token of some rows: what the scores need, and
    what a teacher's pass must keep to score a student's agreement later (its choices), so a
    teacher's pass can be cached and reused by every student (evaluation/teacher_pass.py)."""

    nll: float  # summed next-token cross-entropy against the references
    tokens: int
    choices: torch.Tensor  # [tokens] the most likely next token at each response position

    def scores(self, reference: torch.Tensor | None = None) -> dict[str, Any]:
        """`perplexity`; with another model's choices on the same rows, `agreement`."""
        scores: dict[str, Any] = {
            "response_tokens": self.tokens,
            "perplexity": math.exp(self.nll / max(self.tokens, 1)),
        }
        if reference is not None:
            if reference.shape != self.choices.shape:
                raise ValueError(
                    f"agreement needs choices on the same tokens ({tuple(reference.shape)} vs "
                    f"{tuple(self.choices.shape)})"
                )
            agreed = int((self.choices == reference.to(self.choices.device)).sum())
            scores["agreement"] = agreed / max(self.tokens, 1)
        return scores


@torch.no_grad()
def response_pass(
    model: torch.nn.Module, encoded: EncodedInstructions, pad_token_id: int, batch_size: int = 8
) -> ResponsePass:
    """The model's summed cross-entropy and next-token choices over every response token."""
    model.eval()
    device = next(model.parameters()).device  # after training on a GPU the model stays there
    batches = InstructionBatches(encoded, pad_token_id)
    nll, tokens, choices = 0.0, 0, []
    for _, collated in batches.in_order(batch_size):
        batch = to_device(collated, device)
        positions = response_positions(batch, "evaluation")
        targets = torch.zeros_like(batch["labels"])
        targets[:, :-1] = batch["labels"][:, 1:]
        logits = logits_at(model, batch).float()  # the head at response positions only
        nll += float(F.cross_entropy(logits, targets[positions], reduction="sum"))
        choices.append(logits.argmax(-1).cpu())
        tokens += int(positions.sum())
    chosen = torch.cat(choices) if choices else torch.zeros(0, dtype=torch.long)
    return ResponsePass(nll, tokens, chosen)


def response_scores(
    model: torch.nn.Module,
    encoded: EncodedInstructions,
    pad_token_id: int,
    teacher: torch.nn.Module | None = None,
    batch_size: int = 8,
) -> dict[str, Any]:
    """`perplexity`: exp of the mean next-token cross-entropy over every response token of the
    references; with a teacher, `agreement`: the share of those positions where both models'
    most likely next token is the same."""
    own = response_pass(model, encoded, pad_token_id, batch_size)
    if teacher is None:
        return own.scores()
    return own.scores(response_pass(teacher, encoded, pad_token_id, batch_size).choices)
