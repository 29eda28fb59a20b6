"""The recipe of `distill pretrain`: general (task-agnostic) distillation on a text corpus.

A separate recipe, not a mode of `distill run`: it has no task, labels, metric or dev split;
its data is a corpus and its product a general student that task recipes start from
(`student: {init: pretrained, model: DIR}`). Teacher, student, objectives, train and cache
sections are the task recipe's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from distill.config.recipe import (
    CacheConfig,
    ObjectiveConfig,
    TeacherConfig,
    _Strict,
    read_yaml,
    validated,
)
from distill.config.train import TrainConfig
from distill.data.corpus import CorpusConfig
from distill.models.config import StudentConfig

# objectives that read the masked-LM head's vocabulary logits and the masked positions
MASKED_LM_OBJECTIVES = ("mlm", "mlm_soft_targets")


class MaskingConfig(_Strict):
    """BERT's masking, applied when a masked-LM objective is in the recipe: of the tokens
    chosen with `probability`, 80% become [MASK], 10% a random token, 10% stay."""

    probability: float = Field(default=0.15, gt=0, lt=1)


class PretrainRecipe(_Strict):
    teacher: TeacherConfig
    student: StudentConfig = Field(default_factory=StudentConfig)
    corpus: CorpusConfig
    # held-out text: the objectives' values on it at the end (e.g. WikiText-2 valid)
    eval_corpus: CorpusConfig | None = None
    max_eval_blocks: int = Field(default=256, gt=0)
    masking: MaskingConfig = Field(default_factory=MaskingConfig)
    objectives: list[ObjectiveConfig] = Field(min_length=1)
    train: TrainConfig = Field(default_factory=TrainConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)

    @model_validator(mode="after")
    def _general(self) -> PretrainRecipe:
        if self.teacher.finetune is not None:
            raise ValueError(
                "teacher.finetune: general distillation has no task to fine-tune on; drop it"
            )
        if all(o.weight == 0 for o in self.objectives):
            raise ValueError("objectives: every weight is 0; nothing would be trained")
        if "task" in [o.name for o in self.objectives]:
            raise ValueError(
                "objectives: 'task' needs labelled rows; general distillation has none "
                "(use mlm for the corpus's own masked-LM loss)"
            )
        return self

    def masks(self) -> bool:
        """Whether batches are masked: when a masked-LM objective trains."""
        return any(o.name in MASKED_LM_OBJECTIVES and o.weight > 0 for o in self.objectives)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> PretrainRecipe:
        return cls.from_dict(read_yaml(path), overrides)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], overrides: list[str] | None = None) -> PretrainRecipe:
        return validated(cls, raw, overrides)
