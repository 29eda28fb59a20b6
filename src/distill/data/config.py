"""The recipe's `data` section: where a task's examples come from.

It lives with the data layer that reads it; config/recipe.py assembles it into the recipe.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Columns(BaseModel):
    """Which columns of a custom data file hold the text(s) and the label."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())  # a typo is an error

    text: str
    text_pair: str | None = None
    label: str = "label"


class DataConfig(BaseModel):
    """Where the task's examples come from (see docs/tasks-and-data.md)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())  # a typo is an error

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

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_as_text(cls, labels: Any) -> Any:
        # Labels are matched as text against the data; YAML hands over `[no, yes]` as booleans
        # and `[1, 2]` as integers, which are meant as the text the data holds.
        if not isinstance(labels, list):
            return labels
        if any(isinstance(label, bool) for label in labels):
            raise ValueError(
                "YAML reads yes/no/on/off/true/false as booleans: quote them, "
                f"e.g. labels: ['no', 'yes'] (got {labels})"
            )
        return [str(label) if isinstance(label, int) else label for label in labels]

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
