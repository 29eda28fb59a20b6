"""The class order of a custom task's labels: given, read from files, or from a ClassLabel."""

from __future__ import annotations

import json
from pathlib import Path

import datasets

from distill.data.config import DataConfig
from distill.data.load import load_task_data

CLASSES = [str(i) for i in range(12)]  # 12 classes: "10" and "11" sort before "2" as text


def _jsonl(path: Path, labels: list[object]) -> Path:
    path.write_text(
        "".join(json.dumps({"text": f"t{i}", "y": y}) + "\n" for i, y in enumerate(labels))
    )
    return path


def _files(path: Path, **options: object) -> DataConfig:
    return DataConfig(
        files={"train": str(path), "eval": str(path)},
        columns={"text": "text", "label": "y"},
        **options,
    )


def test_integer_labels_read_from_the_data_sort_numerically(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "train.jsonl", [int(c) for c in reversed(CLASSES)])
    data = load_task_data("stars", _files(path))
    assert data.task.labels == tuple(CLASSES)
    assert data.task.num_labels == 12
    # label 10 is class 10 (as text it would be class 2, between "1" and "2")
    assert data.train.labels == list(range(11, -1, -1))


def test_integer_labels_in_a_csv_sort_numerically_including_negatives(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text,y\n" + "".join(f"t,{y}\n" for y in ["10", "-1", "2", "0", "10"]))
    data = load_task_data("stars", _files(path))
    assert data.task.labels == ("-1", "0", "2", "10")
    assert data.train.labels == [3, 0, 2, 1, 3]


def test_text_labels_read_from_the_data_sort_as_text(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "train.jsonl", ["b", "10", "a", "2"])  # not all integers
    data = load_task_data("mixed", _files(path))
    assert data.task.labels == ("10", "2", "a", "b")
    assert data.train.labels == [3, 0, 2, 1]


def test_labels_given_in_the_recipe_keep_their_order(tmp_path: Path) -> None:
    given = ["10", "2", "0", "1", "3", "4", "5", "6", "7", "8", "9", "11"]
    path = _jsonl(tmp_path / "train.jsonl", [10, 2, 11, 0])
    data = load_task_data("stars", _files(path, labels=given))
    assert data.task.labels == tuple(given)
    assert data.train.labels == [0, 1, 11, 2]


def test_a_class_label_column_keeps_its_indices_and_names(tmp_path: Path) -> None:
    # A ClassLabel whose names are integers: the names must follow the indices, not a text sort.
    features = datasets.Features(
        {"text": datasets.Value("string"), "y": datasets.ClassLabel(names=CLASSES)}
    )
    split = datasets.Dataset.from_dict(
        {"text": ["a", "b", "c", "d"], "y": [10, 2, 11, 0]}, features=features
    )
    datasets.DatasetDict({"train": split, "validation": split}).save_to_disk(tmp_path / "ds")
    config = DataConfig(
        source="disk", path=str(tmp_path / "ds"), columns={"text": "text", "label": "y"}
    )
    data = load_task_data("stars", config)
    assert data.task.labels == tuple(CLASSES)
    assert data.train.labels == [10, 2, 11, 0]
    assert [data.task.labels[i] for i in data.train.labels] == ["10", "2", "11", "0"]
