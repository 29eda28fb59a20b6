"""Run a model and collect what the objectives need: hidden states, attention maps and the
pre-softmax attention scores.

transformers 5 defaults to `sdpa` attention, which returns an empty tuple for
`output_attentions=True` without an error, and no implementation exposes the scores before the
softmax (TinyBERT's target). So while an attention objective trains, both models run a
registered attention function, `distill_eager`: eager attention's arithmetic, which also records
the scores when asked. Outside that window the models keep their own implementation.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask

from distill.data.batching import model_inputs
from distill.data.instructions import predicting_response
from distill.errors import DistillError
from distill.models.outputs import ModelOutput

CAPTURE_IMPLEMENTATION = "distill_eager"
# what only the capturing attention returns: while an objective needs one of these, the models
# run it (capturing_attention)
ATTENTION_KINDS = frozenset({"attentions", "attention_scores", "attention_qkv"})
_recorders: list[list[torch.Tensor]] = []
_qkv_recorders: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = []


def _capturing_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager attention (`[batch, heads, seq, head_dim]` in); records `q k^T * scaling`.

    Returns the attention output and the softmax maps *before* dropout: the maps are what the
    objectives compare (MiniLM's KL needs rows that are distributions), while the output is
    computed through dropout as the model's own attention would.
    """
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if _recorders:
        _recorders[-1].append(scores)
    if _qkv_recorders:
        _qkv_recorders[-1].append((query, key, value))
    weights = scores if attention_mask is None else scores + attention_mask[..., : key.shape[-2]]
    weights = torch.nn.functional.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    # in train mode dropout zeroes ~p of the entries and rescales the rest: only the output
    # sees it (tests/models/test_capture.py)
    dropped = torch.nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(dropped, value).transpose(1, 2).contiguous()
    return output, weights


AttentionInterface.register(CAPTURE_IMPLEMENTATION, _capturing_attention)
# Without a registered mask function transformers passes custom attention no mask at all, and
# padding would be attended to (found by tests/objectives/test_deep_objectives.py).
AttentionMaskInterface.register(CAPTURE_IMPLEMENTATION, eager_mask)


@contextmanager
def capturing_attention(models: list[torch.nn.Module], enabled: bool = True) -> Iterator[None]:
    """Switch `models` to the capturing attention for the block, then back to what they had."""
    if not enabled:
        yield
        return
    previous = [model.config._attn_implementation for model in models]
    try:
        for model in models:
            _set_implementation(model, CAPTURE_IMPLEMENTATION)
        yield
    finally:
        for model, implementation in zip(models, previous, strict=True):
            _set_implementation(model, implementation)


def _set_implementation(model: torch.nn.Module, implementation: str) -> None:
    try:
        model.set_attn_implementation(implementation)
    except (ValueError, AttributeError) as error:
        raise DistillError(
            f"objectives: attention objectives need eager attention, which "
            f"'{model.config.model_type}' cannot switch to ({str(error).splitlines()[0]})"
        ) from None


@contextmanager
def _recording(recorders: list[list[Any]], enabled: bool) -> Iterator[list[Any]]:
    """A list that the attention calls inside the block append to, in call order (nested
    blocks: the innermost records)."""
    found: list[Any] = []
    if enabled:
        recorders.append(found)
    try:
        yield found
    finally:
        if enabled:
            recorders.remove(found)


def recording_qkv(enabled: bool) -> contextlib.AbstractContextManager[list[Any]]:
    """Each attention call's projected queries, keys and values (`[batch, heads, seq,
    head_dim]`): what MiniLMv2's self-attention relations compare."""
    return _recording(_qkv_recorders, enabled)


def recording_scores(enabled: bool) -> contextlib.AbstractContextManager[list[Any]]:
    """The pre-softmax scores of every attention call in the block."""
    return _recording(_recorders, enabled)


def response_columns(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The sequence positions (`[n]`, ascending) where some row's logits predict a response
    token (`labels[t + 1] != -100`): all a causal-LM objective reads. Asking the model for
    the logits there only spares the `[batch, seq, vocabulary]` float32 output of the whole
    sequence; on S-NI's rows (long prompts, short answers) most positions are prompt."""
    return predicting_response(batch["labels"]).any(dim=0).nonzero().squeeze(-1)


def logits_at(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """`[n, vocabulary]`: the model's logits at the batch's response positions (those of
    `response_columns`, each row's in order, rows in order), its head run there only when the
    model allows: evaluation and the teacher cache read nothing else."""
    positions = predicting_response(batch["labels"])
    if not _keeps_logits(model):
        return model(**model_inputs(batch)).logits[positions]
    columns = response_columns(batch)
    output = model(**model_inputs(batch), logits_to_keep=columns)
    return output.logits[positions[:, columns]]


@functools.cache
def _accepts_logits_to_keep(model_class: type) -> bool:
    return "logits_to_keep" in inspect.signature(model_class.forward).parameters


def _keeps_logits(model: torch.nn.Module) -> bool:
    """The model (under a DDP or torch.compile wrapper) takes `logits_to_keep`, as transformers'
    causal LMs do; one that does not gives logits at every position."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return _accepts_logits_to_keep(type(model))


def forward(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], needs: frozenset[str]
) -> ModelOutput:
    """One forward pass returning exactly what `needs` asks for; fails loudly when attention
    maps were asked for and none came back."""
    want_scores, want_qkv = "attention_scores" in needs, "attention_qkv" in needs
    labels = batch.get("labels")
    per_token = labels is not None and labels.dim() == 2  # causal-LM batches
    wanted = "response_logits" in needs and per_token and _keeps_logits(model)
    columns = response_columns(batch) if wanted else None
    # a causal LM's head then runs on those positions only (`logits_to_keep`)
    keep = {} if columns is None else {"logits_to_keep": columns}
    with recording_scores(want_scores) as scores, recording_qkv(want_qkv) as qkv:
        output = model(
            **model_inputs(batch),
            output_hidden_states="hidden_states" in needs,
            output_attentions="attentions" in needs,
            **keep,
        )
    result = ModelOutput.from_transformers(output, batch["attention_mask"])
    result.logit_columns = columns
    if want_scores:
        result.attention_scores = tuple(scores)
    if want_qkv:
        result.attention_qkv = tuple(qkv)
    for kind, found in (
        ("attentions", result.attentions),
        ("attention_scores", result.attention_scores),
        ("attention_qkv", result.attention_qkv),
    ):
        if kind in needs and not found:
            config = getattr(model, "config", None)
            raise DistillError(
                f"objectives: the {getattr(config, 'model_type', 'model')} model returned no "
                f"{kind.replace('_', ' ')} (attention implementation "
                f"'{getattr(config, '_attn_implementation', '?')}'); attention objectives need "
                "a model whose attention goes through transformers' attention functions"
            )
    return result
