"""The recipe's `student` section: how the student is built.

It lives with the models layer that builds students; config/recipe.py assembles it into the
recipe.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class StudentConfig(BaseModel):
    """How the student is built: teacher layers (DistilBERT init), a config, or a saved model."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())  # a typo is an error

    init: Literal["teacher_layers", "config", "pretrained"] = "teacher_layers"
    layers: list[int] | None = None
    # Without a list of blocks: how many to keep, and how to choose them: `spread` evenly
    # from the first to the last, or `influence`, the blocks that change their input most
    # (ShortGPT; causal LMs, measured in docs/causal-lm.md).
    num_layers: int | None = Field(default=None, gt=0)
    layers_by: Literal["spread", "influence"] | None = None
    config: dict[str, Any] | None = None
    model: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> StudentConfig:
        if self.init == "pretrained" and not self.model:
            raise ValueError("init 'pretrained' needs student.model (a path or hub name)")
        if self.init == "config" and not self.config:
            raise ValueError("init 'config' needs student.config (e.g. {num_hidden_layers: 3})")
        chooses = self.num_layers is not None or self.layers_by is not None
        if chooses and self.init != "teacher_layers":
            raise ValueError("num_layers and layers_by choose teacher blocks: init teacher_layers")
        if chooses and self.layers is not None:
            raise ValueError(
                "give either student.layers (the blocks) or num_layers/layers_by (a rule), not both"
            )
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
