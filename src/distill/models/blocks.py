"""Where a transformers model keeps its list of transformer blocks."""

from __future__ import annotations

import torch

from distill.errors import DistillError

# BERT/RoBERTa/ELECTRA/DeBERTa, DistilBERT, ModernBERT and decoder-style models.
_LAYER_PATHS = ("encoder.layer", "transformer.layer", "layers", "encoder.layers")


def block_list(model: torch.nn.Module) -> tuple[torch.nn.Module, str]:
    """The module holding the blocks and the attribute name of its ModuleList."""
    base = getattr(model, "base_model", model)
    for path in _LAYER_PATHS:
        *parents, name = path.split(".")
        node = base
        for part in parents:
            node = getattr(node, part, None)
        if node is not None and isinstance(getattr(node, name, None), torch.nn.ModuleList):
            return node, name
    model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
    raise DistillError(
        f"distill does not know where model type '{model_type}' keeps its transformer blocks "
        f"(looked for {', '.join(_LAYER_PATHS)})"
    )


def encoder_blocks(model: torch.nn.Module) -> torch.nn.ModuleList:
    parent, name = block_list(model)
    return getattr(parent, name)


def every_kth_layer(total: int, count: int) -> list[int]:
    """`count` blocks spread evenly from the first, ending at the last (10 of 30: 0, 3, ... 29,
    as the issue's 'every 3rd block' while keeping the top block that feeds the head)."""
    if count >= total:
        return list(range(total))
    if count == 1:
        return [total - 1]
    return sorted({round(i * (total - 1) / (count - 1)) for i in range(count)})
