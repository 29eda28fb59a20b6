"""Transfer sets: unlabelled text the teacher labels (data.transfer), read from files (txt, csv,
tsv, jsonl, parquet, each optionally .gz), a hub dataset or a dataset saved to disk. Rows carry
no gold label (None), so only the teacher's objectives learn from them."""

from __future__ import annotations

import gzip
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

from distill.data.config import TransferConfig
from distill.data.files import (
    BINARY_PROBE,
    FILE_BUILDERS,
    check_text_head,
    check_utf8,
    first_line,
    read_delimited,
)
from distill.data.load import Examples, load_dataset_split
from distill.data.tasks import Task
from distill.errors import DistillError

_SUFFIXES = (".txt", *FILE_BUILDERS)


def load_transfer(config: TransferConfig, task: Task, seed: int = 0) -> tuple[Examples, str]:
    """The transfer set's texts (pairs for a pair task), labels all None, and its source."""
    if config.files:
        parts = [_read_file(Path(file), config, task) for file in config.files]
        texts = [t for part in parts for t in part[0]]
        pairs = None if task.text_pair_column is None else [p for part in parts for p in part[1]]
        source = "files:" + ",".join(config.files)
    else:
        texts, pairs, source = _read_dataset(config, task)
    if not texts:
        raise DistillError(f"data.transfer: {source} has no text rows; give a file with text")
    if config.max_examples and config.max_examples < len(texts):
        picked = sorted(random.Random(seed + 2).sample(range(len(texts)), config.max_examples))
        texts = [texts[i] for i in picked]
        pairs = None if pairs is None else [pairs[i] for i in picked]
    return Examples(texts, pairs, [None] * len(texts)), source


# -- files ----------------------------------------------------------------------------------------
def _read_file(path: Path, config: TransferConfig, task: Task) -> tuple[list[str], list[str]]:
    if not path.is_file():
        raise DistillError(f"data.transfer.files: {path} not found")
    compressed = path.suffix.lower() == ".gz"
    suffix = Path(path.stem).suffix.lower() if compressed else path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise DistillError(
            f"data.transfer.files: {path} is not one of {', '.join(_SUFFIXES)} (optionally .gz)"
        )
    with tempfile.TemporaryDirectory(prefix="distill-transfer-") as scratch:
        plain = path
        if compressed:  # decompressed once, so every reader below sees an ordinary file
            plain = Path(scratch) / path.stem
            try:
                with gzip.open(path) as source, plain.open("wb") as target:
                    shutil.copyfileobj(source, target)
            except (OSError, EOFError) as error:
                raise DistillError(
                    f"data.transfer.files: {path} is not a readable gzip file ({error})"
                ) from None
        if suffix != ".parquet":
            _check_text(plain, path)
        if suffix == ".txt":
            return _read_lines(plain, path, task)
        rows = _read_table(plain, suffix, path)
        return _columns(rows, config, task, str(path))


def _check_text(plain: Path, shown: Path) -> None:
    with plain.open("rb") as handle:
        head = handle.read(BINARY_PROBE)
    check_text_head(
        head, shown, "data.transfer.files", "a text file (txt, csv, tsv, jsonl) or parquet"
    )
    try:
        check_utf8(plain)
    except DistillError as error:  # same message, naming the file the user gave
        message = str(error).replace(str(plain), str(shown)).removeprefix("data: ")
        raise DistillError(f"data.transfer.files: {message}") from None


def _read_lines(plain: Path, shown: Path, task: Task) -> tuple[list[str], list[str]]:
    """One example per line; blank lines skipped; a pair task takes tab-separated pairs."""
    texts, pairs = [], []
    with plain.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            if task.text_pair_column is None:
                texts.append(line)
                continue
            fields = line.split("\t")
            if len(fields) != 2:
                raise DistillError(
                    f"data.transfer.files: {shown} line {number}: task {task.name} takes sentence "
                    "pairs; a .txt transfer file needs two tab-separated texts per line (or use "
                    "csv/jsonl with data.transfer.text and text_pair columns)"
                )
            texts.append(fields[0])
            pairs.append(fields[1])
    return texts, pairs


def _read_table(plain: Path, suffix: str, shown: Path) -> Any:
    import datasets

    if suffix in (".csv", ".tsv"):
        renamed = plain.with_suffix(suffix)  # read_delimited reads the delimiter off the suffix
        if renamed != plain:
            plain.rename(renamed)
        return read_delimited(renamed)
    try:
        return datasets.load_dataset(FILE_BUILDERS[suffix], data_files=str(plain), split="train")
    except Exception as error:
        raise DistillError(
            f"data.transfer.files: could not read {shown}: {first_line(error)}"
        ) from None


# -- datasets -------------------------------------------------------------------------------------
def _read_dataset(config: TransferConfig, task: Task) -> tuple[list[str], list[str] | None, str]:
    rows, source = load_dataset_split(
        config.name, config.config, config.path, config.split, "data.transfer"
    )
    texts, pairs = _columns(rows, config, task, source)
    return texts, pairs if task.text_pair_column else None, source


def _columns(rows: Any, config: TransferConfig, task: Task, where: str) -> tuple[list, list]:
    """The text (and pair) columns: data.transfer.text/text_pair, else the task's own names;
    rows whose text is blank are skipped (unlabelled text has no row to fix)."""
    text = config.text or task.text_column
    pair = config.text_pair or task.text_pair_column
    if config.text_pair and task.text_pair_column is None:
        raise DistillError(
            f"data.transfer.text_pair: task {task.name} takes single texts; drop text_pair"
        )
    for field, column in (("text", text), ("text_pair", pair)):
        if column is not None and column not in rows.column_names:
            raise DistillError(
                f"data.transfer.{field}: column '{column}' not found in {where}; columns: "
                f"{', '.join(rows.column_names)} (name it with data.transfer.{field})"
            )
    firsts = rows[text]
    seconds = rows[pair] if pair else [None] * len(firsts)
    kept = [
        (str(a), "" if b is None else str(b))
        for a, b in zip(firsts, seconds, strict=True)
        if a is not None and str(a).strip() and (pair is None or (b is not None and str(b).strip()))
    ]
    return [a for a, _ in kept], [b for _, b in kept]
