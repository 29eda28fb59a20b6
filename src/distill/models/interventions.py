"""Interchange interventions with plain forward hooks on the encoder blocks.

`interchange(model, {i: source}, positions)` runs the block with the model's forward while the
output of block i (hidden-state index i, counted from 1) is replaced at `positions` by `source`.
Hooks are removed when the block exits, also when the forward pass raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from distill.models.blocks import encoder_blocks


def _replace(output: Any, source: torch.Tensor, positions: torch.Tensor) -> Any:
    """Blocks return a tensor (transformers 5 BERT) or a tuple whose first item is the states."""
    hidden = output[0] if isinstance(output, tuple) else output
    swapped = torch.where(positions[..., None], source.to(hidden.dtype), hidden)
    return (swapped, *output[1:]) if isinstance(output, tuple) else swapped


@contextmanager
def interchange(
    model: torch.nn.Module, sources: dict[int, torch.Tensor], positions: torch.Tensor
) -> Iterator[None]:
    """Swap in `sources[i]` (`[batch, seq, hidden]`) at `positions` (`[batch, seq]` bool) for the
    output of block i (1-based, as in `hidden_states`) during every forward pass in the block."""
    blocks = encoder_blocks(getattr(model, "module", model))  # unwrap DDP
    handles = []
    try:
        for index, source in sources.items():

            def hook(module: torch.nn.Module, args: Any, output: Any, source=source) -> Any:
                return _replace(output, source, positions)

            handles.append(blocks[index - 1].register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


def count_hooks(model: torch.nn.Module) -> int:
    """Forward hooks on every submodule (tests: interventions must leave none behind)."""
    return sum(len(module._forward_hooks) for module in model.modules())


@contextmanager
def block_output(model: torch.nn.Module, index: int) -> Iterator[list[torch.Tensor]]:
    """Record the output of block `index` (1-based) as the next layer sees it, i.e. after any
    intervention hook registered earlier (transformers records `hidden_states` before them)."""
    outputs: list[torch.Tensor] = []
    block = encoder_blocks(getattr(model, "module", model))[index - 1]

    def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
        outputs.append(output[0] if isinstance(output, tuple) else output)

    handle = block.register_forward_hook(hook)
    try:
        yield outputs
    finally:
        handle.remove()
