"""Corpus input for general distillation: units, blocks, the token cache and bad files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

import distill.data.corpus as corpus_module
from distill.data.corpus import CorpusConfig, corpus_key, load_corpus, text_units
from distill.errors import DistillError

CORPUS_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "corpus"
BOOK = """CHAPTER I.

It was a bright cold day in April, and the
clocks were striking thirteen.

The hallway smelt of boiled cabbage
and old rag mats.
"""


def test_paragraphs_join_hard_wrapped_lines_and_headings_are_skipped() -> None:
    lines = [" = Title = ", "", " first line", "second line ", "", " = = Section = = ", "third", ""]
    assert list(text_units(lines, "paragraph", skip_headings=True)) == [
        "first line second line",
        "third",
    ]
    assert list(text_units(lines, "line", skip_headings=True)) == [
        "first line",
        "second line",
        "third",
    ]
    # a heading kept when asked; "a = b = c" inside prose is no heading
    kept = list(text_units([" = Title = ", "x = y = z"], "line", skip_headings=False))
    assert kept == ["= Title =", "x = y = z"]
    assert list(text_units(["x = y = z"], "line", skip_headings=True)) == ["x = y = z"]


def _config(tmp_path: Path, text: str, name: str = "book.txt", **settings) -> CorpusConfig:
    settings.setdefault("block_size", 8)
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return CorpusConfig(files=[str(path)], **settings)


def test_blocks_are_contiguous_text_wrapped_in_special_tokens(tmp_path: Path, tokenizer) -> None:
    config = _config(tmp_path, BOOK)
    blocks = load_corpus(config, tokenizer, tmp_path / "cache", "tiny")
    paragraphs = list(text_units(BOOK.splitlines(), "paragraph", True))
    assert blocks.units == len(paragraphs) == 3
    expected = [t for p in paragraphs for t in tokenizer(p, add_special_tokens=False)["input_ids"]]
    assert len(blocks) == len(expected) // 6  # 8 minus [CLS] and [SEP]
    for i in range(len(blocks)):
        block = blocks[i]
        assert len(block) == 8
        assert block[0] == tokenizer.cls_token_id and block[-1] == tokenizer.sep_token_id
        assert block[1:-1] == expected[6 * i : 6 * i + 6]
    with pytest.raises(IndexError):
        blocks[len(blocks)]


def test_gz_and_plain_files_give_the_same_tokens(tmp_path: Path, tokenizer) -> None:
    plain = load_corpus(_config(tmp_path, BOOK), tokenizer, tmp_path / "c", "tiny")
    packed = load_corpus(_config(tmp_path, BOOK, "book.txt.gz"), tokenizer, tmp_path / "c", "tiny")
    assert np.array_equal(plain.tokens, packed.tokens)


def test_the_token_file_is_built_once_and_reused(
    tmp_path: Path, tokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, BOOK)
    first = load_corpus(config, tokenizer, tmp_path / "cache", "tiny")
    monkeypatch.setattr(corpus_module, "_build", lambda *a: pytest.fail("built twice"))
    again = load_corpus(config, tokenizer, tmp_path / "cache", "tiny")
    assert np.array_equal(first.tokens, again.tokens)
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.is_dir()] == [
        f"corpus-{corpus_key(config, 'tiny')}"
    ]


def test_the_key_changes_with_the_text_the_reading_and_the_tokenizer(tmp_path: Path) -> None:
    base = _config(tmp_path, BOOK)
    key = corpus_key(base, "tiny")
    assert corpus_key(base, "other tokenizer") != key
    assert corpus_key(base.model_copy(update={"sample_by": "line"}), "tiny") != key
    assert corpus_key(base.model_copy(update={"max_tokens": 10}), "tiny") != key
    assert corpus_key(base.model_copy(update={"block_size": 64}), "tiny") == key  # cut at read
    (tmp_path / "book.txt").write_text(BOOK + "One more line.\n")
    assert corpus_key(base, "tiny") != key


def test_max_tokens_stops_reading(tmp_path: Path, tokenizer) -> None:
    blocks = load_corpus(_config(tmp_path, BOOK, max_tokens=20), tokenizer, tmp_path, "tiny")
    assert len(blocks.tokens) == 20


def test_a_saved_dataset_is_a_corpus(tmp_path: Path, tokenizer) -> None:
    import datasets

    datasets.Dataset.from_dict({"body": ["first text here", "", "second\n\ntext"]}).save_to_disk(
        tmp_path / "saved"
    )
    config = CorpusConfig(path=str(tmp_path / "saved"), text="body", block_size=8)
    blocks = load_corpus(config, tokenizer, tmp_path / "cache", "tiny")
    assert blocks.units == 3  # "first text here", "second", "text"
    with pytest.raises(DistillError, match="corpus.text: column 'text' is not in"):
        load_corpus(CorpusConfig(path=str(tmp_path / "saved")), tokenizer, tmp_path, "tiny")
    # saved again with other text of the same size: a new entry, never the stale tokens
    key = corpus_key(config, "tiny")
    datasets.Dataset.from_dict({"body": ["third text here", "", "fourth\n\ntext"]}).save_to_disk(
        tmp_path / "saved"
    )
    assert corpus_key(config, "tiny") != key
    again = load_corpus(config, tokenizer, tmp_path / "cache", "tiny")
    assert list(again.tokens) != list(blocks.tokens)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty; give a file with text"),
        (b"\n\n  \n", "is empty; give a file with text"),
        (b"\x00\x01\x02binary", "looks binary"),
        ("caf\xe9 au lait\n".encode("latin-1"), "is not UTF-8 \\(byte 0xe9 after line 0\\)"),
        (b" = Only a heading = \n", "no text found"),
        (b"two words\n", "shorter than one block of 128"),
    ],
)
def test_bad_corpus_files_are_one_line_and_leave_no_entry(
    tmp_path: Path, tokenizer, content: bytes, message: str
) -> None:
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    with pytest.raises(DistillError, match=message) as error:
        load_corpus(CorpusConfig(files=[str(path)]), tokenizer, tmp_path / "cache", "tiny")
    assert "\n" not in str(error.value)
    if "shorter" not in message:
        assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]


def test_missing_files_and_sources_are_refused(tmp_path: Path, tokenizer) -> None:
    with pytest.raises(DistillError, match="corpus.files: .*missing.txt does not exist"):
        load_corpus(CorpusConfig(files=[str(tmp_path / "missing.txt")]), tokenizer, tmp_path, "t")
    with pytest.raises(DistillError, match="no file matches"):
        load_corpus(CorpusConfig(files=[str(tmp_path / "*.gz")]), tokenizer, tmp_path, "t")
    with pytest.raises(ValidationError, match="give exactly one of corpus.files"):
        CorpusConfig()
    with pytest.raises(ValidationError, match="block_size"):
        CorpusConfig(files=["x"], block_size=4)


@pytest.mark.skipif(not CORPUS_DIR.is_dir(), reason="../shared/data/corpus is not present")
def test_wikitext_valid_reads_its_paragraphs_without_headings(tokenizer, tmp_path: Path) -> None:
    """WikiText-2 valid: 3,760 lines, one paragraph per line (sections are runs of lines), blank
    lines a single space. Read by line, the units are the non-blank lines that are no heading;
    read by paragraph, a section's lines join with spaces, and the tokens are the same."""
    path = CORPUS_DIR / "wikitext2" / "valid.txt.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    assert len(lines) == 3760
    headings = sum(1 for line in lines if corpus_module.WIKITEXT_HEADING.match(line))
    prose = sum(1 for line in lines if line.strip()) - headings
    assert headings > 60  # the 60 article titles and their sections
    by_line = load_corpus(
        CorpusConfig(files=[str(path)], sample_by="line"), tokenizer, tmp_path, "t"
    )
    assert by_line.units == prose
    by_paragraph = load_corpus(CorpusConfig(files=[str(path)]), tokenizer, tmp_path, "t")
    assert by_paragraph.units < prose
    assert np.array_equal(by_line.tokens, by_paragraph.tokens)


def test_a_byte_level_tokenizer_sees_the_break_between_units(tmp_path: Path) -> None:
    """Byte-level BPE (causal LMs) encodes whitespace: units glued together would read
    "cabbage and old rag mats.The hallway" and teach a causal LM text that never occurs."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator([BOOK], trainers.BpeTrainer(vocab_size=300, show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core)
    for sample_by, end in (("paragraph", "\n\n"), ("line", "\n")):
        config = _config(tmp_path, BOOK, sample_by=sample_by)
        blocks = load_corpus(config, tokenizer, tmp_path / "cache", "bpe")
        units = list(text_units(BOOK.splitlines(), sample_by, True))
        assert tokenizer.decode(blocks.tokens.tolist()) == "".join(u + end for u in units)
