"""The YAML recipe as typed pydantic models; every validation rule and error message lives here.

A recipe is compared and fingerprinted only after validation (PyYAML reads `2e-5` as a string).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from distill.config.messages import format_errors
from distill.config.mode import MODES, ModeConfig
from distill.config.overrides import apply_overrides
from distill.config.train import TrainConfig
from distill.data.config import DataConfig
from distill.data.tasks import CAUSAL_LM_TASKS, GLUE_TASKS
from distill.errors import DistillError
from distill.models.config import StudentConfig

_Recipe = TypeVar("_Recipe", bound=BaseModel)


class _Strict(BaseModel):
    """Unknown keys are errors: a typo must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


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


class NamedTeacher(TeacherConfig):
    """One of several teachers (mode multi_teacher)."""

    name: str
    # Its share of the combined distribution; teachers without one split the rest equally.
    weight: float | None = Field(default=None, gt=0)
    task: str | None = None  # the task it teaches (multi-task); defaults to the recipe's task


class TaskEntry(_Strict):
    """One task of a multi-task recipe; `data` defaults to the recipe's `data`."""

    name: str
    data: DataConfig | None = None


class ObjectiveConfig(_Strict):
    """One weighted term of the loss; objective-specific options go under `params`."""

    name: str
    weight: float = Field(default=1.0, ge=0)
    temperature: float | None = Field(default=None, gt=0)
    params: dict[str, Any] = Field(default_factory=dict)
    teacher: str | None = None  # mode multi_teacher: the teacher it follows (default: combined)

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
    """Where teacher outputs are cached and how much of them (docs/objectives.md, "Teacher
    cache")."""

    # false: the teacher runs live in every phase, no cache is read or written (its outputs
    # stay float32; the cache stores float16).
    enabled: bool = True
    dir: str | None = None
    # More classes than this (a vocabulary): keep only the top-k logits per example.
    top_k: int = Field(default=64, gt=0)
    # Hidden states a `states` objective reads are cached when they fit this many GB.
    states_budget_gb: float = Field(default=4.0, ge=0)


class Recipe(_Strict):
    """A validated distillation recipe (see docs/recipes.md)."""

    task: str | None = None
    mode: ModeConfig = Field(default_factory=ModeConfig)
    data: DataConfig
    teacher: TeacherConfig | None = None
    teachers: list[NamedTeacher] | None = Field(default=None, min_length=2)
    tasks: list[TaskEntry] | None = Field(default=None, min_length=2)
    student: StudentConfig = Field(default_factory=StudentConfig)
    objectives: list[ObjectiveConfig] | None = Field(default=None, min_length=1)
    stages: list[StageConfig] | None = Field(default=None, min_length=1)
    train: TrainConfig = Field(default_factory=TrainConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    output: str | None = None

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_name(cls, mode: Any) -> Any:
        if isinstance(mode, str) and mode not in MODES:
            raise ValueError(
                f"'{mode}' is not an available mode; choose one of: {', '.join(MODES)}"
            )
        return {"name": mode} if isinstance(mode, str) else mode

    @model_validator(mode="after")
    def _teachers_for_mode(self) -> Recipe:
        """Which of teacher / teachers / tasks / student / stages each mode takes."""
        mode = self.mode.name
        if mode == "multi_teacher":
            if self.teacher is not None or not self.teachers:
                raise ValueError(
                    "mode multi_teacher takes `teachers` (a list with name and model), "
                    "not `teacher`"
                )
        elif self.teachers is not None or self.tasks is not None:
            field = "teachers" if self.teachers is not None else "tasks"
            raise ValueError(f"{field}: only with mode multi_teacher (mode is {mode})")
        elif self.teacher is None:
            raise ValueError("teacher: required; add teacher.model (a path or hub name)")
        if self.stages is not None and mode != "standard":
            raise ValueError(f"stages: only with mode standard; mode {mode} takes `objectives`")
        if mode == "co_distill" and self.teacher and self.teacher.finetune is not None:
            raise ValueError(
                "teacher.finetune: co_distill trains the teacher together with the student "
                "from the start; drop teacher.finetune (mode.teacher_lr sets its lr)"
            )
        if mode == "self_distill" and self.student != StudentConfig():
            raise ValueError(
                "student: self_distill builds its students from the teacher itself (exits, "
                "or generations of the same architecture); remove `student`"
            )
        for i, objective in enumerate(self.objectives or []):
            names = [t.name for t in self.teachers or []]
            if objective.teacher is not None and objective.teacher not in names:
                raise ValueError(
                    f"objectives[{i}].teacher: '{objective.teacher}' is not a teacher of this "
                    + (
                        f"recipe; choose one of: {', '.join(names)}"
                        if names
                        else "recipe; `teacher` on an objective is for mode multi_teacher"
                    )
                )
        if self.teachers:
            self._check_teachers(self.teachers)
        return self

    def _check_teachers(self, teachers: list[NamedTeacher]) -> None:
        names = [t.name for t in teachers]
        if len(set(names)) != len(names):
            raise ValueError("teachers: each teacher needs a distinct name")
        task_names = self.task_names()
        for i, teacher in enumerate(teachers):
            if teacher.task is not None and teacher.task not in task_names:
                raise ValueError(
                    f"teachers[{i}].task: '{teacher.task}' is not a task of this recipe "
                    f"({', '.join(task_names)})"
                )
        for j, task in enumerate(task_names):
            if not any((t.task or task_names[0]) == task for t in teachers):
                where = f"tasks[{j}]" if self.tasks else "task"
                raise ValueError(
                    f"{where}: task '{task}' has no teacher; add one to `teachers` with "
                    f"task: {task}"
                )
        if self.tasks and any(o.teacher for o in self.objectives or []):
            raise ValueError(
                "objectives: `teacher` on an objective is for one task; in a multi-task "
                "recipe each task's head follows its own teachers"
            )
        weights = self.mode.task_weights or {}
        for task in weights:
            if task not in task_names:
                raise ValueError(
                    f"mode.task_weights: '{task}' is not a task of this recipe "
                    f"({', '.join(task_names)})"
                )

    def task_names(self) -> list[str]:
        """The recipe's tasks: `tasks` (multi-task) or the one `task`."""
        if self.tasks:
            return [t.name for t in self.tasks]
        return [self.task] if self.task else []

    def data_for(self, task: str) -> DataConfig:
        entry = next((t for t in self.tasks or [] if t.name == task), None)
        return entry.data if entry is not None and entry.data is not None else self.data

    def teachers_for(self, task: str) -> list[NamedTeacher]:
        """The teachers of `task` (several in an ensemble), or the one teacher as 'teacher'."""
        if self.teachers is None:
            assert self.teacher is not None
            return [NamedTeacher(name="teacher", **self.teacher.model_dump())]
        first = self.task_names()[0]
        return [t for t in self.teachers if (t.task or first) == task]

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
        if self.task is None and self.tasks is None:
            raise ValueError(
                "task: required; add it to the recipe (or `tasks`, a list, with mode multi_teacher)"
            )
        if self.task is not None and self.tasks is not None:
            raise ValueError("tasks: give `task` (one) or `tasks` (several), not both")
        if self.tasks and len(set(self.task_names())) != len(self.tasks):
            raise ValueError("tasks: each task may appear once")
        if self.task in CAUSAL_LM_TASKS:
            self._check_causal_lm()
            return self
        for key in ("teacher_responses", "on_policy", "prompt_loss"):
            if any(getattr(self.data_for(t), key) for t in self.task_names()):
                raise ValueError(f"data.{key}: is for task: instruction (a causal LM)")
        if any(self.data_for(t).eval_text for t in self.task_names()):
            raise ValueError("data.eval_text: is for causal-LM tasks (task: instruction or text)")
        held_out = any(self.data_for(t).held_out_share for t in self.task_names())
        if held_out and self.train.eval_every is None:
            raise ValueError(
                "data.held_out_share: rows held out for train.eval_every to score on; set "
                "train.eval_every (with keep_best or early_stopping) or drop it"
            )
        for j, task in enumerate(self.task_names()):
            where = f"tasks[{j}]" if self.tasks else "task"
            data = self.data_for(task)
            if task in CAUSAL_LM_TASKS:
                raise ValueError(f"{where}: '{task}' (a causal-LM task) cannot be one of several")
            if data.columns is not None and (data.columns.prompt or data.columns.response):
                raise ValueError(
                    "data.columns: prompt/response columns are for task: instruction; a "
                    "classification task names its text (and label) columns"
                )
            if data.columns is not None and not data.columns.text:
                raise ValueError(
                    "data.columns.text: required for a classification task (the column "
                    "holding the text)"
                )
            if task not in GLUE_TASKS and data.columns is None:
                raise ValueError(
                    f"{where}: '{task}' is not a registered task "
                    f"({', '.join(GLUE_TASKS)}); for a custom task give data.columns"
                )
            if task not in GLUE_TASKS and data.source == "glue_dir":
                raise ValueError(
                    f"{where}: custom task '{task}' needs data.files or data.name, "
                    "not a GLUE directory"
                )
        return self

    def _check_causal_lm(self) -> None:
        """What a causal-LM task takes: files, a hub or a saved dataset (data.path is a saved
        dataset here, not a GLUE directory), one teacher, one phase, standard mode."""
        columns = self.data.columns
        if self.task == "text":
            if columns is not None and (columns.prompt or columns.response or columns.text_pair):
                raise ValueError(
                    "data.columns: task text reads one text column (columns: {text: ...}); "
                    "prompt/response columns are for task: instruction"
                )
            for key in ("teacher_responses", "on_policy", "prompt_loss"):
                if getattr(self.data, key) not in (None, False):
                    raise ValueError(
                        f"data.{key}: is for task: instruction (prompts the models answer); "
                        "task text has no prompts (its loss covers every token)"
                    )
        elif columns is not None and (columns.text or columns.text_pair):
            raise ValueError(
                f"data.columns: task {self.task} names its prompt and response columns "
                "(columns: {prompt: ..., response: ...}), not text"
            )
        if self.mode.name != "standard":
            raise ValueError(
                f"mode.name: task {self.task} is distilled in mode standard (for now); "
                f"'{self.mode.name}' is for classification tasks"
            )
        if self.stages is not None:
            raise ValueError(f"stages: task {self.task} takes `objectives` (one phase)")
        for key in ("transfer", "augment", "held_out_share"):
            if getattr(self.data, key) is not None:
                raise ValueError(f"data.{key}: is for classification tasks, not {self.task}")

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> Recipe:
        """Read, override (`a.b=v`, list items by index) and validate a YAML recipe."""
        return cls.from_dict(read_yaml(path), overrides)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], overrides: list[str] | None = None) -> Recipe:
        return validated(cls, raw, overrides)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A recipe file's mapping; a missing file or bad YAML is one line."""
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
    return raw


def validated(model: type[_Recipe], raw: dict[str, Any], overrides: list[str] | None) -> _Recipe:
    """`raw` with `--set` overrides applied, validated as `model`; errors one line each."""
    raw = apply_overrides(raw, overrides or [])
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise DistillError("\n".join(format_errors(error, model))) from None
