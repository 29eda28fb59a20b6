"""The YAML recipe as typed pydantic models; every validation rule and error message lives here.

A recipe is compared and fingerprinted only after validation (PyYAML reads `2e-5` as a string).
"""

from __future__ import annotations

import copy
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from distill.errors import DistillError
from distill.tasks import GLUE_TASKS

MODES = ("standard",)


class _Strict(BaseModel):
    """Unknown keys are errors: a typo must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Columns(_Strict):
    """Which columns of a custom data file hold the text(s) and the label."""

    text: str
    text_pair: str | None = None
    label: str = "label"


class DataConfig(_Strict):
    """Where the task's examples come from (see README, "Data sources")."""

    source: Literal["glue_dir", "hub", "disk", "files"] | None = None
    path: str | None = None
    name: str | None = None
    config: str | None = None
    files: dict[str, str] | None = None
    columns: Columns | None = None
    labels: list[str] | None = None
    regression: bool = False
    train_split: str = "train"
    eval_split: str | None = None
    max_train_examples: int | None = Field(default=None, gt=0)
    max_eval_examples: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _infer_source(self) -> DataConfig:
        # The source follows from which key is given, so most recipes never name it.
        if self.source is None:
            if self.files:
                self.source = "files"
            elif self.name:
                self.source = "hub"
            elif self.path:
                self.source = "glue_dir"
            else:
                raise ValueError(
                    "give data.path (a GLUE directory), data.name (a hub dataset) "
                    "or data.files (csv/tsv/jsonl/parquet)"
                )
        needed = {"glue_dir": "path", "disk": "path", "hub": "name", "files": "files"}[self.source]
        if not getattr(self, needed):
            raise ValueError(f"source '{self.source}' needs data.{needed}")
        if self.source == "files" and "train" not in self.files:
            raise ValueError("data.files needs a 'train' entry (and usually 'eval')")
        return self


class FinetuneConfig(_Strict):
    """Fine-tuning of a base encoder into the teacher, before distillation."""

    epochs: float = Field(default=3.0, gt=0)
    max_steps: int | None = Field(default=None, gt=0)
    lr: float = Field(default=2e-5, gt=0)
    batch_size: int = Field(default=32, gt=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    weight_decay: float = Field(default=0.01, ge=0)
    max_train_examples: int | None = Field(default=None, gt=0)
    freeze_embeddings: bool = False  # as train.freeze_embeddings, for the teacher's fine-tuning


class TeacherConfig(_Strict):
    model: str
    finetune: FinetuneConfig | None = None


class StudentConfig(_Strict):
    """How the student is built: teacher layers (DistilBERT init), a config, or a saved model."""

    init: Literal["teacher_layers", "config", "pretrained"] = "teacher_layers"
    layers: list[int] | None = None
    config: dict[str, Any] | None = None
    model: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> StudentConfig:
        if self.init == "pretrained" and not self.model:
            raise ValueError("init 'pretrained' needs student.model (a path or hub name)")
        if self.init == "config" and not self.config:
            raise ValueError("init 'config' needs student.config (e.g. {num_hidden_layers: 3})")
        return self

    @field_validator("layers")
    @classmethod
    def _distinct_blocks(cls, layers: list[int] | None) -> list[int] | None:
        if layers is not None:
            if not layers:
                raise ValueError("empty; list at least one teacher block, counted from 0")
            if len(set(layers)) != len(layers) or any(i < 0 for i in layers):
                raise ValueError("must be distinct teacher block indices >= 0 (counted from 0)")
        return layers


class ObjectiveConfig(_Strict):
    """One weighted term of the loss; objective-specific options go under `params`."""

    name: str
    weight: float = Field(default=1.0, ge=0)
    temperature: float | None = Field(default=None, gt=0)
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from distill.objectives import OBJECTIVES  # here: objectives import models and data

        if name not in OBJECTIVES and "." not in name:
            raise ValueError(
                f"'{name}' is not an objective; choose one of: "
                f"{', '.join(OBJECTIVES)} (or a dotted path to your own class)"
            )
        return name


class TrainConfig(_Strict):
    epochs: float = Field(default=3.0, gt=0)
    max_steps: int | None = Field(default=None, gt=0)
    batch_size: int = Field(default=32, gt=0)
    eval_batch_size: int = Field(default=64, gt=0)
    lr: float = Field(default=5e-5, gt=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    weight_decay: float = Field(default=0.01, ge=0)
    max_grad_norm: float | None = Field(default=1.0, gt=0)
    max_length: int = Field(default=128, gt=1)
    seed: int = 0
    log_every: int = Field(default=10, gt=0)
    threads: int | None = Field(default=None, gt=0)
    # Keep the student's word-embedding matrix (11.7M of a MiniLM student's 17.4M parameters)
    # as copied from the teacher: no gradient or optimizer update for it, a faster step on CPU.
    freeze_embeddings: bool = False


class StageConfig(_Strict):
    """One phase of distillation with its own objectives, run after the previous one on the
    same student (TinyBERT: intermediate layers first, then the prediction layer). Unset
    `epochs`/`max_steps`/`lr` come from `train`."""

    name: str
    objectives: list[ObjectiveConfig] = Field(min_length=1)
    epochs: float | None = Field(default=None, gt=0)
    max_steps: int | None = Field(default=None, gt=0)
    lr: float | None = Field(default=None, gt=0)

    def settings(self, train: TrainConfig) -> TrainConfig:
        """`train` with this stage's overrides; a stage giving epochs drops train.max_steps."""
        updates: dict[str, Any] = {}
        if self.epochs is not None:
            updates |= {"epochs": self.epochs, "max_steps": self.max_steps}
        elif self.max_steps is not None:
            updates["max_steps"] = self.max_steps
        if self.lr is not None:
            updates["lr"] = self.lr
        return train.model_copy(update=updates)


class CacheConfig(_Strict):
    dir: str | None = None


class Recipe(_Strict):
    """A validated distillation recipe (see README, "Recipes")."""

    task: str
    mode: str = "standard"
    data: DataConfig
    teacher: TeacherConfig
    student: StudentConfig = Field(default_factory=StudentConfig)
    objectives: list[ObjectiveConfig] | None = Field(default=None, min_length=1)
    stages: list[StageConfig] | None = Field(default=None, min_length=1)
    train: TrainConfig = Field(default_factory=TrainConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    output: str | None = None

    @field_validator("mode")
    @classmethod
    def _mode(cls, mode: str) -> str:
        if mode not in MODES:
            raise ValueError(
                f"'{mode}' is not an available mode; choose one of: {', '.join(MODES)}"
            )
        return mode

    @model_validator(mode="after")
    def _objectives_or_stages(self) -> Recipe:
        if (self.objectives is None) == (self.stages is None):
            raise ValueError(
                "give `objectives` (one distillation phase) or `stages` (several, each with "
                "its objectives), not both and not neither"
            )
        if self.stages and len({s.name for s in self.stages}) != len(self.stages):
            raise ValueError("stages: each stage needs a distinct name")
        return self

    def stage_list(self) -> list[StageConfig]:
        """The phases to run: `stages`, or one stage named 'distill' from `objectives`."""
        if self.stages:
            return self.stages
        assert self.objectives is not None
        return [StageConfig(name="distill", objectives=self.objectives)]

    @model_validator(mode="after")
    def _task_known(self) -> Recipe:
        if self.task not in GLUE_TASKS and self.data.columns is None:
            raise ValueError(
                f"task: '{self.task}' is not a registered task "
                f"({', '.join(GLUE_TASKS)}); for a custom task give data.columns"
            )
        if self.task not in GLUE_TASKS and self.data.source == "glue_dir":
            raise ValueError(
                f"task: custom task '{self.task}' needs data.files or data.name, "
                "not a GLUE directory"
            )
        return self

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> Recipe:
        """Read, override (`a.b=v`, list items by index) and validate a YAML recipe."""
        path = Path(path)
        if not path.is_file():
            raise DistillError(f"recipe: {path} does not exist; give the path of a YAML recipe")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark else ""
            raise DistillError(
                f"recipe: {path} is not valid YAML{where}: {getattr(error, 'problem', error)}"
            ) from None
        if not isinstance(raw, dict):
            raise DistillError(f"recipe: {path} must be a YAML mapping of keys (task, data, ...)")
        return cls.from_dict(raw, overrides)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], overrides: list[str] | None = None) -> Recipe:
        raw = apply_overrides(raw, overrides or [])
        try:
            return cls.model_validate(raw)
        except ValidationError as error:
            raise DistillError("\n".join(format_errors(error))) from None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `--set key.path=value` overrides; values are parsed as YAML scalars."""
    raw = copy.deepcopy(raw)
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key:
            raise DistillError(f"--set {override}: expected key.path=value, e.g. train.lr=3e-5")
        value = yaml.safe_load(text) if text else None
        *parents, last = key.split(".")
        node: Any = raw
        for part in parents:
            node = _child(node, part, override)
        if not isinstance(node, dict | list):
            raise DistillError(f"--set {override}: '{parents[-1]}' is a value, not a mapping")
        if isinstance(node, list):
            node[_index(node, last, override)] = value
        else:
            node[last] = value
    return raw


def format_errors(error: ValidationError) -> list[str]:
    """One line per problem: `field.path: what is wrong; what is allowed`."""
    lines = []
    for item in error.errors():
        loc = _format_loc(item["loc"])
        kind, message = item["type"], item["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            allowed = _allowed_keys(item["loc"][:-1])
            message = f"unknown key; allowed keys here: {', '.join(allowed)}"
        elif kind == "literal_error":
            message = f"{item['input']!r} is not allowed; choose one of: {item['ctx']['expected']}"
        elif kind == "missing":
            message = "required; add it to the recipe"
        else:
            message = f"{message} (got {item['input']!r})" if kind != "value_error" else message
        lines.append(f"{loc}: {message}" if loc else message)
    return lines


def _format_loc(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model at `loc`, found by walking the annotations from Recipe."""
    model: Any = Recipe
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[part].annotation
        model = next(
            (
                arg
                for arg in _flatten(annotation)
                if isinstance(arg, type) and issubclass(arg, BaseModel)
            ),
            None,
        )
        if model is None:
            return []
    return list(model.model_fields)


def _flatten(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    if not args:
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        return [inner for arg in args for inner in _flatten(arg)]
    return [annotation]


def _child(node: Any, part: str, override: str) -> Any:
    """Step into `part` of a mapping or list, creating missing mappings on the way."""
    if isinstance(node, list):
        child = node[_index(node, part, override)]
    else:
        if part not in node or node[part] is None:
            node[part] = {}
        child = node[part]
    if not isinstance(child, dict | list):
        raise DistillError(f"--set {override}: '{part}' is a value, not a mapping")
    return child


def _index(node: list[Any], part: str, override: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise DistillError(
            f"--set {override}: '{part}' is not an index of a list of "
            f"{len(node)} items (use 0..{len(node) - 1})"
        )
    return int(part)
