"""Reading local data files: jsonl/json/csv/tsv/parquet tables with their formats checked
(present, UTF-8, not empty, not binary) before any parser sees them, and the first line of an
error for one-line messages. Shared by task data, transfer sets, corpora and instructions."""

from __future__ import annotations

import codecs
import csv
from pathlib import Path
from typing import Any

from distill.errors import DistillError

FILE_BUILDERS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "json",
    ".json": "json",
    ".parquet": "parquet",
}
# The csv module refuses fields over 131,072 characters; long texts are legitimate (max_length
# truncates them). 2**31 - 1 fits a C long everywhere (sys.maxsize overflows it on Windows).
FIELD_LIMIT = 2**31 - 1


def load_files(files: dict[str, str]) -> Any:
    import datasets

    suffixes = set()
    for split, file in files.items():
        if not Path(file).is_file():
            raise DistillError(f"data.files.{split}: {file} not found")
        suffixes.add(Path(file).suffix.lower())
        if Path(file).suffix.lower() != ".parquet":
            check_utf8(Path(file))
        if suffixes & {".csv", ".tsv", ".jsonl"} and not has_data_line(Path(file), suffixes):
            raise DistillError(f"data: {file} has no examples")
    if len(suffixes) != 1 or (suffix := suffixes.pop()) not in FILE_BUILDERS:
        raise DistillError(
            f"data.files: use one format for all splits, one of {', '.join(FILE_BUILDERS)}"
        )
    if suffix in (".csv", ".tsv"):
        return datasets.DatasetDict(
            {split: read_delimited(Path(file)) for split, file in files.items()}
        )
    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # a bar per split of a local file is noise in the output
    try:
        return datasets.load_dataset(FILE_BUILDERS[suffix], data_files=files)
    except Exception as error:
        raise DistillError(
            f"data.files: could not read {', '.join(files.values())}: {first_line(error)}"
        ) from None
    finally:
        if shown:
            datasets.enable_progress_bars()


def read_delimited(path: Path) -> Any:
    """csv/tsv with the csv module: text stays text (pandas would read "007" as 7.0), and tsv
    quotes are text, as in GLUE."""
    import datasets

    tsv = path.suffix.lower() == ".tsv"
    csv.field_size_limit(FIELD_LIMIT)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(
            handle,
            delimiter="\t" if tsv else ",",
            quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL,
        )
        header = next(reader)
        columns: dict[str, list[str | None]] = {name: [] for name in header}
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise DistillError(
                    f"data: {path} line {line} has {len(row)} fields, the header has {len(header)}"
                )
            for name, value in zip(header, row, strict=True):
                columns[name].append(value if value != "" else None)
    return datasets.Dataset.from_dict(columns)


BINARY_PROBE = 8192  # bytes read to tell text from binary (NUL bytes are valid UTF-8)


def check_text_head(head: bytes, where: object, field: str, wanted: str) -> None:
    """Refuse, in one line, a file whose first BINARY_PROBE bytes are blank, or hold NUL bytes
    (binary: decoding as UTF-8 would not notice)."""
    if not head.strip():
        raise DistillError(f"{field}: {where} is empty; give a file with text")
    if b"\x00" in head:
        raise DistillError(f"{field}: {where} looks binary (NUL bytes); give {wanted}")


def check_utf8(path: Path) -> None:
    """Refuse a file that is not UTF-8 in one line naming the first bad byte's offset (decoding
    it while reading would end in a long UnicodeDecodeError traceback)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes of the file handed to the decoder so far
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(1 << 20)
            pending = len(decoder.getstate()[0])  # an incomplete character from the last chunk
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as error:
                bad = offset - pending + error.start
                raise DistillError(
                    f"data: {path} is not UTF-8 (byte 0x{error.object[error.start]:02x} at "
                    f"offset {bad}); convert it, e.g. iconv -f latin1 -t utf-8 {path} > "
                    f"{path.stem}.utf8{path.suffix}"
                ) from None
            if not chunk:
                return
            offset += len(chunk)


def has_data_line(path: Path, suffixes: set[str]) -> bool:
    """csv/tsv need a row after the header, jsonl any non-blank line."""
    with path.open(encoding="utf-8-sig") as handle:
        lines = [line for line, _ in zip(handle, range(2), strict=False) if line.strip()]
    return len(lines) >= (1 if ".jsonl" in suffixes else 2)


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
