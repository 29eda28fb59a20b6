"""Transfer sets read from files and saved datasets: texts (and pairs) with no gold label, and
one-line errors for files a user might point at by mistake."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import datasets
import pytest

from distill.data.config import DataConfig, TransferConfig
from distill.data.tasks import GLUE_TASKS
from distill.data.transfer import load_transfer
from distill.errors import DistillError

SST2, MRPC = GLUE_TASKS["sst2"], GLUE_TASKS["mrpc"]


def _files(*paths: Path, **extra: object) -> TransferConfig:
    return TransferConfig(files=[str(p) for p in paths], **extra)


def test_txt_gives_one_unlabelled_row_per_non_blank_line(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("a fine film\n\n  \nquite dull\r\n")
    examples, source = load_transfer(_files(path), SST2)
    assert examples.texts == ["a fine film", "quite dull"]
    assert examples.text_pairs is None and examples.labels == [None, None]
    assert source == f"files:{path}"


def test_gzip_and_several_files_are_read_in_order(tmp_path: Path) -> None:
    plain, packed = tmp_path / "a.txt", tmp_path / "b.jsonl.gz"
    plain.write_text("one\n")
    with gzip.open(packed, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"sentence": "two"}) + "\n" + json.dumps({"sentence": "three"}))
    examples, _ = load_transfer(_files(plain, packed), SST2)
    assert examples.texts == ["one", "two", "three"]


def test_pairs_from_a_csv_with_named_columns_and_a_tab_separated_txt(tmp_path: Path) -> None:
    table = tmp_path / "p.csv"
    table.write_text('first,second\n"a, b",c\nd,\n')  # the second row's pair is blank: skipped
    examples, _ = load_transfer(_files(table, text="first", text_pair="second"), MRPC)
    assert (examples.texts, examples.text_pairs) == (["a, b"], ["c"])
    lines = tmp_path / "p.txt"
    lines.write_text("x\ty\n")
    examples, _ = load_transfer(_files(lines), MRPC)
    assert (examples.texts, examples.text_pairs) == (["x"], ["y"])
    lines.write_text("no tab here\n")
    with pytest.raises(DistillError, match=r"line 1: task mrpc takes sentence pairs"):
        load_transfer(_files(lines), MRPC)


def test_a_saved_dataset_and_max_examples(tmp_path: Path) -> None:
    rows = datasets.Dataset.from_dict({"sentence": [f"row {i}" for i in range(50)]})
    rows.save_to_disk(str(tmp_path / "saved"))
    examples, source = load_transfer(
        TransferConfig(path=str(tmp_path / "saved"), max_examples=7), SST2, seed=3
    )
    assert len(examples) == 7 and len(set(examples.texts)) == 7 and source.startswith("disk:")
    again, _ = load_transfer(
        TransferConfig(path=str(tmp_path / "saved"), max_examples=7), SST2, seed=3
    )
    assert again.texts == examples.texts  # the same seed picks the same rows


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"data.transfer.files: .*missing.txt not found"),
        (b"", r"is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", r"looks binary \(NUL bytes\)"),
        (
            "café\n".encode("latin-1"),
            r"^data.transfer.files: .*missing.txt is not UTF-8 \(byte 0xe9 at offset 3\)",
        ),
    ],
)
def test_bad_files_get_one_line(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "missing.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DistillError, match=message) as error:
        load_transfer(_files(path), SST2)
    assert "\n" not in str(error.value)


def test_a_column_that_is_not_there_is_named_with_the_columns_that_are(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"text": "hello"}) + "\n")
    with pytest.raises(
        DistillError, match=r"data.transfer.text: column 'sentence' not found.*text"
    ):
        load_transfer(_files(path), SST2)


def test_transfer_and_augment_settings_are_checked_when_the_recipe_is_read() -> None:
    with pytest.raises(ValueError, match="exactly one of data.transfer.files"):
        TransferConfig(files=["a.txt"], name="imdb")
    for copies in (0, 101):
        with pytest.raises(ValueError, match="copies"):
            DataConfig(path="glue", augment={"methods": ["mask"], "copies": copies})
    with pytest.raises(ValueError, match="methods"):
        DataConfig(path="glue", augment={"methods": ["synonyms"]})
    with pytest.raises(ValueError, match="mlm needs data.augment.mlm_model"):
        DataConfig(path="glue", augment={"methods": ["mlm"]})
    with pytest.raises(ValueError, match="data.labelled_share mixes labelled and transfer rows"):
        DataConfig(path="glue", labelled_share=0.5)
    assert DataConfig(path="glue", labelled_share=0.5, augment={"methods": ["mask"]})
