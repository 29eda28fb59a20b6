"""Data of causal LMs read from `datasets` or plain text: `task: text` (language modelling on a
corpus, packed into fixed-length blocks) and `task: instruction` rows from a hub or saved
dataset.

A block of text is served as an instruction row whose response starts at token 0, so every
part of causal-LM distillation (the top-k teacher cache, the token-level objectives, response
perplexity and token agreement) reads it unchanged: the loss is on every next token of the
block. Blocks come from the general-distillation corpus reader (data/corpus.py): tokenised once,
cached on disk under a key of the text and the tokenizer, read through a memory map.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, overload

from distill.data.config import DataConfig
from distill.data.corpus import CorpusBlocks, CorpusConfig, load_corpus
from distill.data.instructions import EncodedInstructions, InstructionRows, rows_of_table
from distill.data.load import load_dataset_split


class BlockRows(Sequence[list[int]]):
    """The first `count` blocks of a corpus as token-id lists, read from the memory map on
    access (a corpus of many blocks is never held as Python lists)."""

    def __init__(self, blocks: CorpusBlocks, count: int) -> None:
        self.blocks, self.count = blocks, min(count, len(blocks))

    def __len__(self) -> int:
        return self.count

    @overload
    def __getitem__(self, index: int) -> list[int]: ...
    @overload
    def __getitem__(self, index: slice) -> list[list[int]]: ...
    def __getitem__(self, index: int | slice) -> list[int] | list[list[int]]:
        if isinstance(index, slice):
            return [self.blocks[i] for i in range(*index.indices(self.count))]
        if not -self.count <= index < self.count:
            raise IndexError(index)
        return self.blocks[index % self.count]


def block_rows(blocks: CorpusBlocks, count: int | None = None) -> EncodedInstructions:
    """Blocks as rows whose loss covers every token (the response starts at 0)."""
    rows = BlockRows(blocks, len(blocks) if count is None else count)
    return EncodedInstructions(rows, [0] * len(rows))  # type: ignore[arg-type]


def text_corpus(data: DataConfig, split: str, block_size: int, blocks: int | None) -> CorpusConfig:
    """The corpus reader's settings for one split of `task: text`'s data: a text file or glob
    (`data.files`), or a hub or saved dataset's text column; with a block limit, no more text
    is tokenised than those blocks need."""
    text = (data.columns and data.columns.text) or "text"
    limit = blocks * block_size if blocks else None
    if data.source == "files":
        assert data.files is not None
        config = CorpusConfig(files=[data.files[split]], block_size=block_size, max_tokens=limit)
        return config.named("data")
    name = data.train_split if split == "train" else (data.eval_split or split)
    source = {"name": data.name} if data.source == "hub" else {"path": data.path}
    return CorpusConfig(
        **source,
        config=data.config,
        split=name,
        text=text,
        block_size=block_size,
        max_tokens=limit,
    ).named("data")


def read_text_task(
    data: DataConfig, tokenizer: Any, tokenizer_id: str, block_size: int, cache_dir: Path
) -> tuple[EncodedInstructions, EncodedInstructions | None]:
    """Training blocks, and held-out blocks when the data has an eval split; `tokenizer_id`
    keys the token cache (models/fingerprint.py's tokenizer_json, hashed)."""

    def blocks(split: str, count: int | None) -> EncodedInstructions:
        config = text_corpus(data, split, block_size, count)
        return block_rows(load_corpus(config, tokenizer, cache_dir, tokenizer_id), count)

    train = blocks("train", data.max_train_examples)
    has_eval = (
        "eval" in (data.files or {}) if data.source == "files" else data.eval_split is not None
    )
    return train, blocks("eval", data.max_eval_examples) if has_eval else None


def dataset_instructions(
    data: DataConfig, prompt: str, response: str
) -> dict[str, InstructionRows]:
    """`task: instruction` rows from a hub dataset (`data.name`) or one saved with
    save_to_disk (`data.path`): its train split and, when named, its eval split."""
    splits = {"train": data.train_split}
    if data.eval_split:
        splits["eval"] = data.eval_split
    rows = {}
    for key, split in splits.items():
        table, where = load_dataset_split(
            data.name if data.source == "hub" else None,
            data.config,
            data.path if data.source != "hub" else None,
            split,
            "data",
        )
        rows[key] = rows_of_table(table, f"{where} ({split})", prompt, response)
    return rows
