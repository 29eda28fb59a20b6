"""The recipe's `data` section: where a task's examples come from.

It lives with the data layer that reads it; config/recipe.py assembles it into the recipe.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator


class Columns(BaseModel):
    """Which columns of a custom data file hold the text(s) and the label (classification: text
    required), or the prompt and the response (task: instruction; default prompt, response)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())  # a typo is an error

    text: str | None = None
    text_pair: str | None = None
    label: str = "label"
    prompt: str | None = None
    response: str | None = None


AUGMENT_METHODS = (
    "mask",
    "ngram",
    "neighbours",
    "mlm",
)  # = augment.METHODS (a test keeps them equal)


class AugmentConfig(BaseModel):
    """`data.augment`: new unlabelled rows made from the task's own training text, for the
    teacher to label (Tang et al. 2019: mask, ngram; TinyBERT: neighbours, mlm)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    methods: list[Literal[AUGMENT_METHODS]] = Field(min_length=1)  # type: ignore[valid-type]
    copies: int = Field(default=10, ge=1, le=100)  # augmented rows per training row
    seed: int = 0
    mask_p: float = Field(default=0.1, gt=0, le=1)  # Tang et al.: a word becomes [MASK]
    ngram_p: float = Field(default=0.25, gt=0, le=1)  # Tang et al.: the row becomes an n-gram
    ngram_max: int = Field(default=5, ge=1)
    neighbours_p: float = Field(default=0.4, gt=0, le=1)  # TinyBERT's replacement rate
    neighbours_k: int = Field(default=15, ge=1)
    mlm_p: float = Field(default=0.4, gt=0, le=1)
    mlm_k: int = Field(default=15, ge=1)
    mlm_model: str | None = None  # any AutoModelForMaskedLM: a path, hub name or package:

    @model_validator(mode="after")
    def _mlm_needs_a_model(self) -> AugmentConfig:
        if "mlm" in self.methods and not self.mlm_model:
            raise ValueError(
                "method mlm needs data.augment.mlm_model (a masked-LM such as "
                "bert-base-uncased, a local path, or package:MODULE/FOLDER)"
            )
        return self


class TransferConfig(BaseModel):
    """`data.transfer`: unlabelled text the teacher labels, from files or a `datasets` dataset;
    the columns name the text (and the second text, for pair tasks)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    files: list[str] | None = None  # txt (one example per line), csv/tsv/jsonl/parquet, .gz
    name: str | None = None  # a hub dataset
    path: str | None = None  # a dataset saved with save_to_disk
    config: str | None = None
    split: str = "train"
    text: str | None = None  # column; default: the task's text column ("text" for .txt)
    text_pair: str | None = None
    max_examples: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_source(self) -> TransferConfig:
        given = [key for key in ("files", "name", "path") if getattr(self, key)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of data.transfer.files (a list of files), data.transfer.name "
                f"(a hub dataset) or data.transfer.path (a saved dataset); got {given or 'none'}"
            )
        return self


class TeacherResponses(BaseModel):
    """`data.teacher_responses`: sequence-level distillation (Kim & Rush 2016) for causal LMs:
    the teacher answers every training prompt once (cached) and the student trains on those
    answers instead of the references."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    max_new_tokens: int = Field(default=64, gt=0)
    do_sample: bool = False  # greedy by default
    temperature: float = Field(default=1.0, gt=0)  # when sampling
    seed: int = 0


class OnPolicy(BaseModel):
    """`data.on_policy`: on-policy distillation (GKD, Agarwal et al. 2024) for causal LMs: with
    probability `fraction` (GKD's lambda) a batch's responses are sampled from the student
    itself, then scored by the teacher."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    fraction: float = Field(default=0.5, ge=0, le=1)
    max_new_tokens: int = Field(default=64, gt=0)
    temperature: float = Field(default=1.0, gt=0)


class CorpusConfig(BaseModel):
    """`corpus`: the text a general student is distilled on (docs/general-distillation.md)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    files: list[str] | None = None  # paths or glob patterns; .txt, .gz (any text)
    name: str | None = None  # a hub dataset
    path: str | None = None  # a dataset saved with save_to_disk
    config: str | None = None
    split: str = "train"
    text: str = "text"  # the dataset's text column
    sample_by: Literal["paragraph", "line"] = "paragraph"
    skip_headings: bool = True  # WikiText's " = Title = " lines
    block_size: int = Field(default=128, ge=8)  # tokens per block, special tokens included
    max_tokens: int | None = Field(default=None, gt=0)  # read no more than this many tokens
    # the recipe key errors name: `corpus` in a general recipe, `data` for a causal LM's text
    _field: str = PrivateAttr(default="corpus")

    def named(self, field: str) -> CorpusConfig:
        """This corpus, its errors naming `field` (e.g. data.files) instead of corpus.*."""
        self._field = field
        return self

    @model_validator(mode="after")
    def _one_source(self) -> CorpusConfig:
        given = [key for key in ("files", "name", "path") if getattr(self, key)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of corpus.files (text files or globs), corpus.name (a hub "
                f"dataset) or corpus.path (a saved dataset); got {given or 'none'}"
            )
        return self


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
    # Share of the labelled training rows held out (seeded, before any augmentation) for
    # train.eval_every / keep_best / early_stopping to score on, so the weights are never
    # chosen on the dev split the run reports. Neither teacher nor student trains on them.
    held_out_share: float | None = Field(default=None, gt=0, le=0.5)
    transfer: TransferConfig | None = None
    augment: AugmentConfig | None = None
    # Share of labelled rows in each training batch when there are transfer rows; None mixes
    # them in proportion to their numbers (one shuffled pool).
    labelled_share: float | None = Field(default=None, gt=0, lt=1)
    # task: instruction only: train on the teacher's own answers (sequence-level distillation)
    teacher_responses: TeacherResponses | None = None
    # task: instruction only: batches answered by the student (on-policy distillation)
    on_policy: OnPolicy | None = None
    # task: instruction only: every training loss (the task's and the teacher objectives') also
    # covers the prompt's tokens, chat template included; held-out scores stay on responses
    prompt_loss: bool = False
    # causal LMs only: a text (e.g. WikiText-2 test) both models' perplexity is measured on
    eval_text: CorpusConfig | None = None

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
        if self.labelled_share is not None and self.transfer is None and self.augment is None:
            raise ValueError(
                "data.labelled_share mixes labelled and transfer rows; without data.transfer "
                "or data.augment every row is labelled: drop it or add a transfer set"
            )
        return self
