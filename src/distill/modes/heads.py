"""Models that share one encoder and keep their own heads: early exits (an exit after block k
is the model truncated at k) and multi-task students (one head per task).

Each is an ordinary transformers classifier whose embeddings and first blocks are the *same
modules* as another model's, so training one trains the shared part of all, and
`save_pretrained` writes a complete, independent model directory.
"""

from __future__ import annotations

import copy

import torch
from transformers import AutoModelForSequenceClassification, PreTrainedModel, set_seed

from distill.data.tasks import Task
from distill.models.blocks import block_list
from distill.models.load import classifier_options, copy_teacher_layers

# Inside the base model, the pooler belongs to the classification head (BERT's head is
# pooler + classifier): every exit and task keeps its own.
_HEAD_PARTS_OF_BASE = ("pooler",)


def share_encoder(target: PreTrainedModel, source: PreTrainedModel) -> None:
    """Point `target`'s embeddings, blocks and everything around them at `source`'s modules.

    `target` may have fewer blocks (an exit): its block i becomes `source`'s block i. Its head
    (what lies outside the base model, and the pooler) stays its own.
    """
    target_parent, name = block_list(target)
    source_parent, _ = block_list(source)
    target_blocks, source_blocks = getattr(target_parent, name), getattr(source_parent, name)
    for i in range(len(target_blocks)):
        target_blocks[i] = source_blocks[i]

    def walk(target_module: torch.nn.Module, source_module: torch.nn.Module, top: bool) -> None:
        for child_name, child in list(target_module.named_children()):
            if child is target_blocks or (top and child_name in _HEAD_PARTS_OF_BASE):
                continue
            if any(m is target_blocks for m in child.modules()):
                walk(child, getattr(source_module, child_name), top=False)
            else:
                setattr(target_module, child_name, getattr(source_module, child_name))

    walk(target.base_model, source.base_model, top=True)


def exit_model(model: PreTrainedModel, blocks: int) -> PreTrainedModel:
    """The model truncated after `blocks` blocks, sharing them, with its own head: a copy of
    the model's head (same shape), so the exit is an ordinary smaller classifier.

    Measured on SST-2 with MiniLM-L6 (benchmarks/results/modes.md): the exit after block 3
    reached 0.812 from a copied head and 0.663 from a newly initialised one in 300 steps.
    """
    exit_ = copy_teacher_layers(model, list(range(blocks)))
    share_encoder(exit_, model)
    return exit_


def task_model(
    student: PreTrainedModel, task: Task, head_from: PreTrainedModel | None, seed: int
) -> PreTrainedModel:
    """A classifier for `task` on `student`'s encoder, with its own head: copied from
    `head_from` (the task's teacher) where the shapes match, else newly initialised."""
    config = copy.deepcopy(student.config)
    for key, value in classifier_options(task).items():
        setattr(config, key, value)
    set_seed(seed)
    model = AutoModelForSequenceClassification.from_config(config)
    if head_from is not None:
        own = model.state_dict()
        prefix = model.base_model_prefix + "."
        head = {
            key: value
            for key, value in head_from.state_dict().items()
            if key in own
            and own[key].shape == value.shape
            and (not key.startswith(prefix) or key.startswith(f"{prefix}pooler."))
        }
        model.load_state_dict(head, strict=False)
    share_encoder(model, student)
    return model.train()
