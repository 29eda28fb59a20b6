"""Task registry: GLUE tasks (columns, label sets, official metrics) and custom tasks."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class GlueLayout:
    """How a task is stored in the original GLUE release (TASK/train.tsv, dev.tsv).

    Columns are given by header name, or by position for header-less files (CoLA).
    """

    folder: str
    eval_file: str = "dev.tsv"
    header: bool = True
    text: str | int = "sentence"
    text_pair: str | int | None = None
    label: str | int = "label"


@dataclass(frozen=True)
class Task:
    """A text (pair) classification or regression task and how it is scored.

    `labels` are the label values as they appear in the data, in the model's class order;
    `None` means regression. `metrics` are the official metrics; the headline score is their mean.
    """

    name: str
    labels: tuple[str, ...] | None
    metrics: tuple[str, ...]
    text_column: str = "sentence"
    text_pair_column: str | None = None
    label_column: str = "label"
    hub_eval_split: str = "validation"
    glue: GlueLayout | None = field(default=None, compare=False)

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    @property
    def metric_name(self) -> str:
        """Name of the headline score, e.g. 'accuracy' or 'f1_accuracy_mean'."""
        return self.metrics[0] if len(self.metrics) == 1 else "_".join(self.metrics) + "_mean"


_NLI = ("entailment", "not_entailment")
GLUE_TASKS: dict[str, Task] = {
    task.name: task
    for task in [
        Task(
            "cola",
            ("0", "1"),
            ("matthews",),
            glue=GlueLayout("CoLA", header=False, text=3, label=1),
        ),
        Task("sst2", ("0", "1"), ("accuracy",), glue=GlueLayout("SST-2")),
        Task(
            "mrpc",
            ("0", "1"),
            ("f1", "accuracy"),
            "sentence1",
            "sentence2",
            glue=GlueLayout("MRPC", text="#1 String", text_pair="#2 String", label="Quality"),
        ),
        Task(
            "stsb",
            None,
            ("pearson", "spearman"),
            "sentence1",
            "sentence2",
            glue=GlueLayout("STS-B", text="sentence1", text_pair="sentence2", label="score"),
        ),
        Task(
            "qqp",
            ("0", "1"),
            ("accuracy", "f1"),
            "question1",
            "question2",
            glue=GlueLayout("QQP", text="question1", text_pair="question2", label="is_duplicate"),
        ),
        Task(
            "mnli",
            ("entailment", "neutral", "contradiction"),
            ("accuracy",),
            "premise",
            "hypothesis",
            hub_eval_split="validation_matched",
            glue=GlueLayout(
                "MNLI",
                eval_file="dev_matched.tsv",
                text="sentence1",
                text_pair="sentence2",
                label="gold_label",
            ),
        ),
        Task(
            "qnli",
            _NLI,
            ("accuracy",),
            "question",
            "sentence",
            glue=GlueLayout("QNLI", text="question", text_pair="sentence"),
        ),
        Task(
            "rte",
            _NLI,
            ("accuracy",),
            "sentence1",
            "sentence2",
            glue=GlueLayout("RTE", text="sentence1", text_pair="sentence2"),
        ),
        Task(
            "wnli",
            ("0", "1"),
            ("accuracy",),
            "sentence1",
            "sentence2",
            glue=GlueLayout("WNLI", text="sentence1", text_pair="sentence2"),
        ),
    ]
}


def custom_task(
    name: str,
    text: str,
    text_pair: str | None,
    label: str,
    labels: list[str] | None,
    regression: bool,
) -> Task:
    """A user's task: its label set is given, or read from the training data by the caller."""
    return Task(
        name,
        None if regression else tuple(labels or ()),
        ("pearson", "spearman") if regression else ("accuracy",),
        text,
        text_pair,
        label,
    )


# Tasks of causal LMs (decoders), run by modes/causal_lm.py: what each trains on.
CAUSAL_LM_TASKS: dict[str, str] = {
    "instruction": "prompt/response rows; the loss on response tokens",
    "text": "language modelling on a corpus packed into blocks; the loss on every token",
}
