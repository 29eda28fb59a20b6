"""Load a task's train and evaluation examples from a GLUE directory, the hub, disk or files."""

from __future__ import annotations

import csv
import dataclasses
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.data.config import DataConfig
from distill.data.files import FIELD_LIMIT, check_utf8, first_line, load_files
from distill.data.tasks import GLUE_TASKS, Task, custom_task
from distill.errors import DistillError

_INTEGER = re.compile(r"[+-]?\d+")


@dataclass
class Examples:
    """Texts and labels of one split: class indices for classification, floats for regression."""

    texts: list[str]
    text_pairs: list[str] | None
    labels: list[Any]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: list[int]) -> Examples:
        pairs = None if self.text_pairs is None else [self.text_pairs[i] for i in indices]
        return Examples([self.texts[i] for i in indices], pairs, [self.labels[i] for i in indices])


@dataclass
class TaskData:
    task: Task
    train: Examples
    eval: Examples
    source: str  # what was read, for the user and the model card
    train_total: int  # training examples before subsampling
    # data.held_out_share: labelled training rows kept out of training, for choosing weights
    held_out: Examples | None = None


def load_task_data(task_name: str, config: DataConfig, seed: int = 0) -> TaskData:
    """Read both splits, check every label against the task's label set, subsample if asked."""
    task = GLUE_TASKS.get(task_name)
    if config.columns is not None:
        columns = config.columns
        assert columns.text is not None  # the recipe requires it for classification tasks
        base = task or custom_task(
            task_name,
            columns.text,
            columns.text_pair,
            columns.label,
            config.labels,
            config.regression,
        )
        task = dataclasses.replace(
            base,
            text_column=columns.text,
            text_pair_column=columns.text_pair,
            label_column=columns.label,
        )
    assert task is not None  # the recipe validator guarantees a registered task or columns
    if config.source == "glue_dir":
        train_rows, eval_rows, source = _read_glue_dir(task, Path(config.path))
        train, evaluation = (
            _to_examples(task, train_rows, source + " train"),
            _to_examples(task, eval_rows, source + " dev"),
        )
    else:
        splits, source, wheres = _read_with_datasets(task, config)
        if task.labels == ():  # custom classification task without a label list: read it
            task = dataclasses.replace(task, labels=_labels_of(splits[0], task.label_column))
        train, evaluation = (
            _to_examples(task, split, where) for split, where in zip(splits, wheres, strict=True)
        )
    train_total = len(train)
    if config.max_train_examples and config.max_train_examples < len(train):
        picked = random.Random(seed).sample(range(len(train)), config.max_train_examples)
        train = train.subset(sorted(picked))
    if config.max_eval_examples and config.max_eval_examples < len(evaluation):
        evaluation = evaluation.subset(list(range(config.max_eval_examples)))
    train, held_out = _hold_out(train, config.held_out_share, seed)
    return TaskData(task, train, evaluation, source, train_total, held_out)


def _hold_out(train: Examples, share: float | None, seed: int) -> tuple[Examples, Examples | None]:
    """A seeded share of the training rows set apart (None when no share is asked)."""
    if share is None:
        return train, None
    count = round(share * len(train))
    if count < 1 or count >= len(train):
        raise DistillError(
            f"data.held_out_share: {share} of {len(train):,} training rows holds out "
            f"{count}; give a share that leaves rows on both sides (e.g. 0.1)"
        )
    held = set(random.Random(seed).sample(range(len(train)), count))
    kept = [i for i in range(len(train)) if i not in held]
    return train.subset(kept), train.subset(sorted(held))


# -- GLUE directory -----------------------------------------------------------------------------
def _read_glue_dir(task: Task, root: Path) -> tuple[list[dict], list[dict], str]:
    """Read TASK/train.tsv and the dev file with quote handling off (quotes are text in GLUE)."""
    assert task.glue is not None
    if not root.is_dir():
        raise DistillError(
            f"data.path: {root} is not a directory; give the folder that holds "
            f"{task.glue.folder}/train.tsv"
        )
    folder = next(
        (root / name for name in (task.glue.folder, task.name) if (root / name).is_dir()),
        root / task.glue.folder,
    )
    rows = []
    for file in ("train.tsv", task.glue.eval_file):
        path = folder / file
        if not path.is_file():
            raise DistillError(
                f"data.path: {path} not found; expected the GLUE layout "
                f"{task.glue.folder}/train.tsv and {task.glue.eval_file}"
            )
        check_utf8(path)
        rows.append(_read_tsv(path, task))
    return rows[0], rows[1], str(folder)


def _read_tsv(path: Path, task: Task) -> list[dict]:
    layout = task.glue
    assert layout is not None
    csv.field_size_limit(FIELD_LIMIT)
    # utf-8-sig drops MRPC's byte-order mark, which would otherwise rename its first column.
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader) if layout.header else None
        wanted = {"text": layout.text, "text_pair": layout.text_pair, "label": layout.label}
        positions = {}
        for key, column in wanted.items():
            if column is None:
                continue
            if isinstance(column, str):
                if header is None or column not in header:
                    raise DistillError(
                        f"data: {path} has no column '{column}' "
                        f"(columns: {', '.join(header or [])})"
                    )
                column = header.index(column)
            positions[key] = column
        width = max(positions.values()) + 1
        rows = []
        for line, row in enumerate(reader, start=2 if header else 1):
            if len(row) < width:
                raise DistillError(
                    f"data: {path} line {line} has {len(row)} columns, expected at least {width}"
                )
            rows.append({key: row[index] for key, index in positions.items()})
    return rows


# -- hub, disk and plain files ------------------------------------------------------------------
def _read_with_datasets(task: Task, config: DataConfig) -> tuple[list[Any], str, list[str]]:
    """Load through `datasets`: a hub name, a dataset saved to disk, or csv/tsv/jsonl/parquet.

    Returns the train and eval splits, the source, and how errors name each split (its file,
    for data.files)."""
    import datasets  # imported here: it is slow to import and a GLUE directory doesn't need it

    eval_split = config.eval_split
    if config.source == "hub":
        hub_config = config.config or (task.name if task.name in GLUE_TASKS else None)
        try:
            loaded = datasets.load_dataset(config.name, hub_config)
        except Exception as error:  # the hub raises many types; the user needs one line
            raise DistillError(
                f"data.name: could not load '{config.name}' "
                f"(config {hub_config}): {first_line(error)}" + _offline_hint(error)
            ) from None
        source, eval_split = f"hub:{config.name}/{hub_config}", eval_split or task.hub_eval_split
    elif config.source == "disk":
        loaded = load_saved_dataset(config.path, "data.path")
        if not isinstance(loaded, datasets.DatasetDict):
            raise DistillError(
                f"data.path: {config.path} holds one Dataset, not a DatasetDict "
                "with splits; save DatasetDict({'train': ..., 'validation': ...})"
            )
        source, eval_split = f"disk:{config.path}", eval_split or "validation"
    else:
        assert config.files is not None
        loaded, source = load_files(config.files), "files"
        eval_split = eval_split or "eval"
    splits = []
    for split in (config.train_split, eval_split):
        if split not in loaded:
            raise DistillError(
                f"data: split '{split}' not found in {source}; available: "
                f"{', '.join(loaded)} (set data.train_split / data.eval_split)"
            )
        dataset = loaded[split]
        for column in (task.text_column, task.text_pair_column, task.label_column):
            if column is not None and column not in dataset.column_names:
                raise DistillError(
                    f"data.columns: column '{column}' not found in {source} "
                    f"{split}; columns: {', '.join(dataset.column_names)}"
                )
        splits.append(dataset)
    wheres = [
        config.files[split] if config.files and split in config.files else f"{source} {name}"
        for split, name in ((config.train_split, "train"), (eval_split, "eval"))
    ]
    return splits, source, wheres


def load_dataset_split(
    name: str | None, config: str | None, path: str | None, split: str, field: str
) -> tuple[Any, str]:
    """One split of a hub dataset (`name`, `config`) or of one saved with save_to_disk
    (`path`), and its source as `hub:NAME/CONFIG` or `disk:PATH`; errors name `field`'s keys
    (data.transfer, corpus)."""
    import datasets

    if name:
        source = f"hub:{name}" + (f"/{config}" if config else "")
        try:
            loaded = datasets.load_dataset(name, config)
        except Exception as error:
            raise DistillError(
                f"{field}.name: could not load '{name}': {first_line(error)}" + _offline_hint(error)
            ) from None
    else:
        assert path is not None
        source = f"disk:{path}"
        loaded = load_saved_dataset(path, f"{field}.path")
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DistillError(
                f"{field}.split: '{split}' not found in {source}; available: {', '.join(loaded)}"
            )
        loaded = loaded[split]
    return loaded, source


def load_saved_dataset(path: str, field: str) -> Any:
    """A Dataset or DatasetDict saved with save_to_disk, or one line naming `field`."""
    import datasets

    try:
        return datasets.load_from_disk(path)
    except Exception as error:  # datasets raises several types for a folder it cannot read
        raise DistillError(
            f"{field}: {path} is not a dataset saved with save_to_disk: {first_line(error)}"
        ) from None


# -- labels -------------------------------------------------------------------------------------
def _to_examples(task: Task, rows: Any, where: str) -> Examples:
    """Build Examples from GLUE rows (dicts) or a datasets.Dataset, validating every label."""
    if isinstance(rows, list):
        texts = [row["text"] for row in rows]
        pairs = [row["text_pair"] for row in rows] if task.text_pair_column else None
        raw_labels, class_indices = [row["label"] for row in rows], False
    else:
        texts = _texts(rows, task.text_column, where)
        pairs = _texts(rows, task.text_pair_column, where) if task.text_pair_column else None
        raw_labels = rows[task.label_column]
        feature = rows.features[task.label_column]
        # A ClassLabel column (hub GLUE) already holds class indices in the task's order.
        class_indices = type(feature).__name__ == "ClassLabel"
    if not texts:
        raise DistillError(f"data: {where} has no examples")
    labels = [
        _label(task, value, class_indices, where, row)
        for row, value in enumerate(raw_labels, start=1)
    ]
    return Examples(texts, pairs, labels)


def _texts(rows: Any, column: str, where: str) -> list[str]:
    texts = rows[column]
    for row, text in enumerate(texts, start=1):
        if text is None:
            raise DistillError(
                f"data: {where} row {row}: empty text in column '{column}'; "
                "fill it in or delete the row"
            )
    return [str(text) for text in texts]


def _labels_of(split: Any, column: str) -> tuple[str, ...]:
    """A custom task's label set read from its training split: a ClassLabel's names in its
    index order; otherwise the distinct values, in numeric order when all are integers (so
    "10" follows "9"), else in text order. Blank labels are left to `_label` to report."""
    feature = split.features[column]
    if type(feature).__name__ == "ClassLabel":
        return tuple(feature.names)
    found = {str(value).strip() for value in split[column] if not _blank(value)}
    if found and all(_INTEGER.fullmatch(value) for value in found):
        return tuple(sorted(found, key=lambda value: (int(value), value)))
    return tuple(sorted(found))


def _label(task: Task, value: Any, class_index: bool, where: str, row: int) -> Any:
    if _blank(value):
        raise DistillError(
            f"data: {where} row {row}: empty label in column '{task.label_column}'; "
            "give it a label or delete the row"
        )
    if task.labels is None:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise DistillError(
                f"data: {where} row {row}: label {value!r} is not a number (regression task)"
            ) from None
    if class_index and isinstance(value, int) and 0 <= value < len(task.labels):
        return value
    text = str(value).strip()
    if text in task.labels:
        return task.labels.index(text)
    raise DistillError(
        f"data: {where} row {row}: label {value!r} is not in the task's label "
        f"set ({', '.join(task.labels)})"
    )


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _offline_hint(error: Exception) -> str:
    """How to use local data, when the hub could not be reached (offline, no network)."""
    chain = [error, error.__cause__, error.__context__]
    text = " ".join(f"{type(e).__name__} {e}" for e in chain if e is not None)
    if not re.search(r"Offline|LocalEntryNotFound|Connect|Timeout|reach|resolve", text):
        return ""
    return (
        "; without internet, use local data: data.path (a GLUE directory) or data.source: "
        "disk in a recipe, `distill quickstart --data PATH` or $DISTILL_DATA"
    )
