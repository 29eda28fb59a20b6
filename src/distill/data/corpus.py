"""Corpus input for general distillation: text files (.gz too) or a `datasets` dataset, read by
line or by blank-line paragraph, tokenised once into a flat token file on disk and served as
fixed-length blocks.

Books are hard-wrapped (a line is a piece of a sentence), so paragraphs are the default unit;
Wikipedia-style files (one paragraph per line, blank lines between) read the same either way.
WikiText's ` = Title = ` heading lines are skipped. The token file is written in chunks and read
through a memory map, so a corpus larger than memory streams; it is cached under a key of the
text's content, the reading settings and the tokenizer, and built once.
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from filelock import FileLock

from distill.data.config import CorpusConfig
from distill.data.files import BINARY_PROBE, check_text_head
from distill.data.load import load_dataset_split
from distill.errors import DistillError
from distill.runtime.progress import progress_bar

# WikiText headings: " = Title = ", " = = Section = = ", " = = = Sub = = = "
WIKITEXT_HEADING = re.compile(r"^\s*(=\s+)+\S.*?(\s+=)+\s*$")
CORPUS_FORMAT = 2  # bump when the token file's layout or the reading rules change
# What ends a unit in the token stream: the text's own break, so a tokenizer that encodes
# whitespace (byte-level BPE of causal LMs) sees paragraphs as text has them rather than glued
# together ("end.Next"); WordPiece drops whitespace, so encoder corpora tokenise as before.
UNIT_END = {"line": "\n", "paragraph": "\n\n"}
_TOKENIZE_BATCH = 1000  # text units per tokenizer call


def corpus_files(config: CorpusConfig, field: str | None = None) -> list[Path]:
    """The files a `files` list names, globs expanded in sorted order; a missing one refused."""
    field = field or f"{config._field}.files"
    found: list[Path] = []
    for pattern in config.files or []:
        if any(char in pattern for char in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(os.path.expanduser(pattern)))]
            if not matches:
                raise DistillError(f"{field}: no file matches '{pattern}'")
            found += [m for m in matches if m.is_file()]
        elif not Path(pattern).expanduser().is_file():
            raise DistillError(f"{field}: {pattern} does not exist; give a text file (.txt, .gz)")
        else:
            found.append(Path(pattern).expanduser())
    return found


def _open_text(path: Path, field: str) -> IO[str]:
    raw: IO[bytes] = gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")
    with raw:
        try:
            head = raw.read(BINARY_PROBE)
        except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
            raise DistillError(f"{field}: {path} cannot be read ({error})") from None
    check_text_head(head, path, field, "a text file")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="\n")
    return path.open(encoding="utf-8", newline="\n")


def _lines(path: Path, field: str) -> Iterator[str]:
    """The file's lines without their ends; a byte that is not UTF-8 refused naming the line."""
    number = 0
    handle = _open_text(path, field)
    with handle:
        try:
            for number, line in enumerate(handle, start=1):  # noqa: B007
                yield line.rstrip("\r\n")
        except UnicodeDecodeError as error:
            raise DistillError(
                f"{field}: {path} is not UTF-8 (byte 0x{error.object[error.start]:02x} "
                f"after line {number}); convert it, e.g. iconv -f latin1 -t utf-8"
            ) from None


def text_units(lines: Iterable[str], sample_by: str, skip_headings: bool) -> Iterator[str]:
    """Lines or blank-line paragraphs (their lines joined by one space), stripped; headings and
    blank units dropped."""
    paragraph: list[str] = []
    for line in lines:
        if skip_headings and WIKITEXT_HEADING.match(line):
            line = ""
        text = line.strip()
        if sample_by == "line":
            if text:
                yield text
            continue
        if text:
            paragraph.append(text)
        elif paragraph:
            yield " ".join(paragraph)
            paragraph = []
    if paragraph:
        yield " ".join(paragraph)


def _dataset_texts(config: CorpusConfig) -> Iterator[str]:
    rows, where = load_dataset_split(
        config.name, config.config, config.path, config.split, config._field
    )
    if config.text not in rows.column_names:
        raise DistillError(
            f"{config._field}.text: column '{config.text}' is not in {where} "
            f"(columns: {', '.join(rows.column_names)})"
        )
    for batch in rows.iter(batch_size=_TOKENIZE_BATCH):  # a column at a time would not stream
        for value in batch[config.text]:
            yield value or ""


def raw_lines(config: CorpusConfig) -> Iterator[str]:
    """Every line of the corpus, files in the order given (a dataset's rows count as lines)."""
    if config.files:
        for path in corpus_files(config):
            yield from _lines(path, f"{config._field}.files")
        yield ""  # a paragraph never runs from one source into the next
    else:
        for value in _dataset_texts(config):
            yield from value.split("\n")


def corpus_key(config: CorpusConfig, tokenizer_id: str) -> str:
    """What the token file depends on: the text (file contents, or the dataset's name, config,
    split and fingerprint), how it is read, and the tokenizer."""
    digest = hashlib.blake2b(digest_size=12)
    reading = {
        "format": CORPUS_FORMAT,
        "sample_by": config.sample_by,
        "skip_headings": config.skip_headings,
        "max_tokens": config.max_tokens,
        "tokenizer": tokenizer_id,
    }
    digest.update(json.dumps(reading, sort_keys=True).encode())
    if config.files:
        for path in corpus_files(config):
            digest.update(path.name.encode())
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 22):
                    digest.update(chunk)
    else:
        source = {"name": config.name, "path": config.path, "config": config.config}
        digest.update(json.dumps({**source, "split": config.split, "text": config.text}).encode())
        # the split's own fingerprint: datasets derives it from the data (a hub dataset's
        # downloaded revision, a saved one's state), so an updated dataset is a new entry
        rows, _ = load_dataset_split(
            config.name, config.config, config.path, config.split, config._field
        )
        digest.update(str(rows._fingerprint).encode())
    return digest.hexdigest()


def special_tokens_around(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a single text ([CLS] / [SEP] for BERT, <s> /
    </s> for RoBERTa), read off one encoding since transformers 5's fast tokenizers keep the
    template in their Rust post-processor."""
    plain = tokenizer("text", add_special_tokens=False)["input_ids"]
    wrapped = tokenizer("text")["input_ids"]
    for start in range(len(wrapped) - len(plain) + 1):
        if wrapped[start : start + len(plain)] == plain:
            return wrapped[:start], wrapped[start + len(plain) :]
    return [], []


@dataclass
class CorpusBlocks:
    """A tokenised corpus as fixed-length blocks: block i is `block_size - specials` tokens of
    contiguous text wrapped in the tokenizer's special tokens ([CLS] ... [SEP] for BERT)."""

    tokens: np.ndarray  # flat token ids (a read-only memory map)
    block_size: int
    prefix: list[int]
    suffix: list[int]
    units: int  # text units read
    key: str = ""  # the token file's cache entry: corpus content, reading settings, tokenizer

    @property
    def body(self) -> int:
        return self.block_size - len(self.prefix) - len(self.suffix)

    def __len__(self) -> int:
        return len(self.tokens) // self.body

    def __getitem__(self, index: int) -> list[int]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        chunk = self.tokens[index * self.body : (index + 1) * self.body].tolist()
        return self.prefix + chunk + self.suffix


def load_corpus(
    config: CorpusConfig, tokenizer: Any, cache_dir: Path, tokenizer_id: str
) -> CorpusBlocks:
    """Tokenise the corpus once (cached under `cache_dir`) and return its blocks."""
    prefix, suffix = special_tokens_around(tokenizer)
    if config.block_size - len(prefix) - len(suffix) < 1:
        raise DistillError(
            f"corpus.block_size: {config.block_size} leaves no room beside the tokenizer's "
            "special tokens; use 32 or more"
        )
    entry = cache_dir / f"corpus-{corpus_key(config, tokenizer_id)}"
    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(entry) + ".lock"):
        if not (entry / "meta.json").is_file():
            _build(config, tokenizer, entry)
    meta = json.loads((entry / "meta.json").read_text())
    tokens = np.memmap(entry / "tokens.bin", dtype=np.uint32, mode="r", shape=(meta["tokens"],))
    blocks = CorpusBlocks(tokens, config.block_size, prefix, suffix, meta["units"], entry.name)
    if len(blocks) == 0:
        raise DistillError(
            f"{config._field}: {meta['tokens']:,} tokens are shorter than one block of "
            f"{config.block_size}; give more text or a smaller corpus.block_size"
        )
    return blocks


def _build(config: CorpusConfig, tokenizer: Any, entry: Path) -> None:
    """Tokenise unit by unit into `entry`/tokens.bin (uint32), written through a staging
    folder so that an interrupted build leaves nothing a later run would trust."""
    staging = entry.with_name(entry.name + f".staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    total = units = 0
    limit = config.max_tokens
    try:
        with (
            (staging / "tokens.bin").open("wb") as out,
            progress_bar("tokenising corpus", limit, unit="tokens") as advance,
        ):
            units_read = text_units(raw_lines(config), config.sample_by, config.skip_headings)
            end = UNIT_END[config.sample_by]
            for batch in _batches(units_read):
                texts = [unit + end for unit in batch]
                ids = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
                flat = np.fromiter((t for row in ids for t in row), dtype=np.uint32)
                if limit is not None:
                    flat = flat[: limit - total]
                out.write(flat.tobytes())
                total += len(flat)
                units += len(batch)
                advance(len(flat))
                if limit is not None and total >= limit:
                    break
        if units == 0:
            raise DistillError(f"{config._field}: no text found (every line blank or a heading)")
        meta = {"tokens": total, "units": units, "format": CORPUS_FORMAT}
        (staging / "meta.json").write_text(json.dumps(meta))
        shutil.rmtree(entry, ignore_errors=True)
        staging.rename(entry)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staging)


def _batches(units: Iterator[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for unit in units:
        batch.append(unit)
        if len(batch) == _TOKENIZE_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


class CorpusBatches:
    """The training loop's batch source for a corpus: every block once per epoch in a seeded
    shuffle. With `mlm_probability`, BERT's masking (of the chosen tokens 80% [MASK], 10% a
    random token, 10% kept; special tokens never chosen) is drawn per batch from the seed and
    the batch's blocks, so a resumed run masks exactly as the interrupted one would have; both
    models see the same masked input, and `mlm_labels` holds the original tokens there."""

    def __init__(
        self, blocks: CorpusBlocks, tokenizer: Any, mlm_probability: float | None, seed: int = 0
    ) -> None:
        self.blocks, self.seed = blocks, seed
        self.masker = None
        if mlm_probability is not None:
            from transformers import DataCollatorForLanguageModeling

            if tokenizer.mask_token is None:
                raise DistillError(
                    "objectives: masked-LM objectives need a tokenizer with a mask token; "
                    f"{type(tokenizer).__name__} has none"
                )
            self.masker = DataCollatorForLanguageModeling(
                tokenizer, mlm_probability=mlm_probability, seed=seed
            )
        self.special = set(blocks.prefix + blocks.suffix)

    @property
    def examples(self) -> int:
        return len(self.blocks)

    def epoch(self, batch_size: int, seed: int) -> Iterator[tuple[str | None, list[int]]]:
        order = np.random.default_rng(seed).permutation(len(self.blocks)).tolist()
        for start in range(0, len(order), batch_size):
            yield None, order[start : start + batch_size]

    def collate(self, task: str | None, indices: list[int]) -> dict[str, Any]:
        import torch

        input_ids = torch.tensor([self.blocks[i] for i in indices], dtype=torch.long)
        batch = {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "index": torch.tensor(indices, dtype=torch.long),  # a states cache reads by block
        }
        if self.masker is not None:
            digest = hashlib.blake2b(repr((self.seed, indices)).encode(), digest_size=8)
            self.masker.generator = torch.Generator().manual_seed(
                int.from_bytes(digest.digest(), "little") >> 1
            )
            special = torch.zeros_like(input_ids, dtype=torch.bool)
            for token in self.special:
                special |= input_ids == token
            masked, labels = self.masker.torch_mask_tokens(input_ids.clone(), special)
            batch["input_ids"], batch["mlm_labels"] = masked, labels
        return batch
