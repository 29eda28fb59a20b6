"""Data files that used to get through or end in a traceback: one line naming file, row, fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from distill.data.config import DataConfig
from distill.data.load import load_task_data
from distill.errors import DistillError


def _custom(path: Path, labels: list[str] | None = None) -> DataConfig:
    return DataConfig(
        files={"train": str(path), "eval": str(path)},
        columns={"text": "review", "label": "stars"},
        labels=labels,
    )


@pytest.mark.parametrize("given", [None, ["1", "2"]])
def test_a_blank_label_names_the_file_and_row(tmp_path: Path, given: list[str] | None) -> None:
    # Without a label list, the blank used to become a third class, "None".
    path = tmp_path / "train.csv"
    path.write_text("review,stars\ngood,2\nbad,1\nhmm,\nfine,2\n")
    with pytest.raises(DistillError) as caught:
        load_task_data("mytask", _custom(path, given))
    assert str(caught.value) == (
        f"data: {path} row 3: empty label in column 'stars'; give it a label or delete the row"
    )


def test_a_null_label_in_jsonl_names_the_file_and_row(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    rows = [{"review": "good", "stars": 2}, {"review": "bad", "stars": None}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DistillError) as caught:
        load_task_data("mytask", _custom(path))
    assert str(caught.value) == (
        f"data: {path} row 2: empty label in column 'stars'; give it a label or delete the row"
    )


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_a_field_of_200000_characters_is_read(tmp_path: Path, suffix: str) -> None:
    # The csv module's default field limit is 131,072 characters; long texts are legitimate
    # (max_length truncates them), so they must load, not crash with `_csv.Error`.
    long_text = "word " * 40_000
    separator = "\t" if suffix == ".tsv" else ","
    path = tmp_path / f"train{suffix}"
    path.write_text(f"review{separator}stars\n{long_text}{separator}1\nshort{separator}2\n")
    data = load_task_data("mytask", _custom(path, ["1", "2"]))
    assert len(data.train.texts[0]) == 200_000
    assert data.train.texts == [long_text, "short"] and data.train.labels == [0, 1]


def test_a_glue_tsv_field_of_200000_characters_is_read(tmp_path: Path) -> None:
    long_text = "x" * 200_000
    for name in ("train.tsv", "dev.tsv"):
        (tmp_path / "SST-2").mkdir(exist_ok=True)
        (tmp_path / "SST-2" / name).write_text(f"sentence\tlabel\n{long_text}\t1\nok\t0\n")
    data = load_task_data("sst2", DataConfig(path=str(tmp_path)))
    assert [len(text) for text in data.train.texts] == [200_000, 2]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_a_file_that_is_not_utf8_names_the_byte_offset(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"train{suffix}"
    if suffix == ".jsonl":
        text = '{"review": "ok", "stars": 1}\n{"review": "café", "stars": 2}\n'
    else:
        separator = "\t" if suffix == ".tsv" else ","
        text = f"review{separator}stars\nok{separator}1\ncafé{separator}2\n"
    path.write_bytes(text.encode("latin-1"))
    offset = text.encode("latin-1").index(b"\xe9")
    with pytest.raises(DistillError) as caught:
        load_task_data("mytask", _custom(path, ["1", "2"]))
    assert str(caught.value) == (
        f"data: {path} is not UTF-8 (byte 0xe9 at offset {offset}); convert it, e.g. "
        f"iconv -f latin1 -t utf-8 {path} > {path.stem}.utf8{suffix}"
    )


def test_a_glue_file_that_is_not_utf8_names_the_byte_offset(tmp_path: Path) -> None:
    (tmp_path / "SST-2").mkdir()
    (tmp_path / "SST-2" / "train.tsv").write_text("sentence\tlabel\nok\t1\n")
    dev = tmp_path / "SST-2" / "dev.tsv"
    dev.write_bytes("sentence\tlabel\nnaïve\t1\n".encode("latin-1"))
    with pytest.raises(DistillError) as caught:
        load_task_data("sst2", DataConfig(path=str(tmp_path)))
    assert str(caught.value).startswith(f"data: {dev} is not UTF-8 (byte 0xef at offset 17); ")


def test_the_hub_offline_fails_at_once_and_says_how_to_use_local_data(tmp_path: Path) -> None:
    # A fresh process: `datasets` reads HF_HUB_OFFLINE when it is imported. No network is used.
    script = (
        "from distill.data.config import DataConfig\n"
        "from distill.data.load import load_task_data\n"
        "from distill.errors import DistillError\n"
        "try:\n"
        "    load_task_data('sst2', DataConfig(name='nyu-mll/glue'))\n"
        "except DistillError as error:\n"
        "    print(error)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout + result.stderr
    assert lines[0].startswith("data.name: could not load 'nyu-mll/glue' (config sst2): ")
    assert lines[0].endswith(
        "; without internet, use local data: data.path (a GLUE directory) or "
        "data.source: disk in a recipe, `distill quickstart --data PATH` or $DISTILL_DATA"
    )
