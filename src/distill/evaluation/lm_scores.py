"""Scores of a causal LM on held-out instruction rows that need no generation: response
perplexity against the references, and how often its next-token choice on the response is the
teacher's (token agreement)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from distill.data.batching import model_inputs
from distill.data.instructions import EncodedInstructions, InstructionBatches
from distill.objectives.token_level import response_positions


@torch.no_grad()
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
    model.eval()
    batches = InstructionBatches(encoded, pad_token_id)
    nll, agreed, tokens = 0.0, 0, 0
    for start in range(0, len(encoded), batch_size):
        batch = batches.collate(None, list(range(start, min(start + batch_size, len(encoded)))))
        positions = response_positions(batch, "evaluation")
        targets = torch.zeros_like(batch["labels"])
        targets[:, :-1] = batch["labels"][:, 1:]
        logits = model(**model_inputs(batch)).logits[positions].float()
        nll += float(F.cross_entropy(logits, targets[positions], reduction="sum"))
        if teacher is not None:
            teacher_logits = teacher(**model_inputs(batch)).logits[positions]
            agreed += int((logits.argmax(-1) == teacher_logits.argmax(-1)).sum())
        tokens += int(positions.sum())
    scores: dict[str, Any] = {
        "response_tokens": tokens,
        "perplexity": math.exp(nll / max(tokens, 1)),
    }
    if teacher is not None:
        scores["agreement"] = agreed / max(tokens, 1)
    return scores
