"""The recipe's `mode:` section: which mode forms the training steps, and its own keys."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MODES = ("standard", "multi_teacher", "co_distill", "self_distill")


# Keys of `mode` that only one mode reads; the others must not set them.
_MODE_KEYS = {
    "multi_teacher": {"task_weights"},
    "co_distill": {"teacher_kl_weight", "teacher_task_weight", "teacher_temperature", "teacher_lr"},
    "self_distill": {"exits", "final_weight", "exits_teach_final", "generations"},
}


class ModeConfig(BaseModel):
    """How a training step is formed (docs/modes.md). `mode: co_distill` is short for
    `mode: {name: co_distill}`."""

    model_config = ConfigDict(extra="forbid")

    name: str = "standard"
    # multi_teacher with several tasks: relative share of each task's batches (default: their
    # training set sizes, i.e. every example once per epoch).
    task_weights: dict[str, float] | None = None
    # co_distill: the teacher's own loss = teacher_task_weight * task + teacher_kl_weight *
    # T^2 KL(student || teacher) at teacher_temperature; its lr defaults to train.lr.
    teacher_kl_weight: float = Field(default=1.0, ge=0)
    teacher_task_weight: float = Field(default=1.0, ge=0)
    teacher_temperature: float = Field(default=1.0, gt=0)
    teacher_lr: float | None = Field(default=None, gt=0)
    # self_distill, early exits: an exit after each listed block (counted from 1, below the
    # last); the final layer keeps final_weight * task loss; exit losses reach the final layer
    # only with exits_teach_final.
    exits: list[int] | None = None
    final_weight: float = Field(default=1.0, ge=0)
    exits_teach_final: bool = False
    # self_distill, born-again: this many student generations, each taught by the previous.
    generations: int | None = Field(default=None, ge=1)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in MODES:
            raise ValueError(
                f"'{name}' is not an available mode; choose one of: {', '.join(MODES)}"
            )
        return name

    @model_validator(mode="after")
    def _keys_of_this_mode(self) -> ModeConfig:
        changed = [
            key
            for key, field in type(self).model_fields.items()
            if key != "name" and getattr(self, key) != field.get_default(call_default_factory=True)
        ]
        for key in changed:  # a default value written out (a saved recipe.yaml) is harmless
            owner = next(mode for mode, keys in _MODE_KEYS.items() if key in keys)
            if owner != self.name:
                raise ValueError(f"mode.{key} is read only by mode {owner}, not {self.name}")
        if self.name == "self_distill" and (self.exits is None) == (self.generations is None):
            raise ValueError(
                "mode self_distill needs mode.exits (early exits, e.g. [2, 4]) or "
                "mode.generations (born-again, e.g. 2), one of the two"
            )
        if self.exits is not None and (not self.exits or len(set(self.exits)) != len(self.exits)):
            raise ValueError("mode.exits: list distinct block counts, e.g. [2, 4]")
        if self.task_weights and any(w <= 0 for w in self.task_weights.values()):
            raise ValueError("mode.task_weights: every weight must be > 0")
        return self

    @property
    def early_exits(self) -> bool:
        return self.name == "self_distill" and self.exits is not None

    @property
    def born_again(self) -> bool:
        return self.name == "self_distill" and self.generations is not None
