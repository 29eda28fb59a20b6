"""A tiny WordPiece tokenizer, a hand-made embedding matrix whose cosine order is known, and a
tiny random masked LM, all built here (no downloads)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, BertTokenizer

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Whole words, each at an angle (degrees) in a plane: cosine similarity is cos(difference).
ANGLES = {
    "good": 0,
    "great": 10,
    "fine": 25,
    "nice": 42,
    "okay": 70,
    "film": 95,
    "movie": 100,
    "plot": 125,
    "poor": 150,
    "awful": 170,
    "bad": 180,
    "the": 230,
    "is": 260,
    "a": 300,
}
NOT_WORDS = ["##s", ",", "."]  # a continuation piece and punctuation: never replacements
VOCAB = SPECIAL + list(ANGLES) + NOT_WORDS
# Long vectors would win a dot product; only their direction may count.
NORMS = {"okay": 100.0, "bad": 50.0}


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> BertTokenizer:
    folder: Path = tmp_path_factory.mktemp("augment-vocab")
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return BertTokenizer(vocab=str(folder / "vocab.txt"))


@pytest.fixture(scope="module")
def tiny_embeddings() -> torch.Tensor:
    """`[vocab, 2]`: each word along its angle; specials, "##s" and punctuation point exactly
    along "good" (cosine 1), so they would be its nearest neighbours were they not excluded."""
    rows = []
    for token in VOCAB:
        angle = math.radians(ANGLES.get(token, ANGLES["good"]))
        norm = NORMS.get(token, 1.0)
        rows.append([norm * math.cos(angle), norm * math.sin(angle)])
    return torch.tensor(rows)


@pytest.fixture(scope="module")
def tiny_mlm(tiny_tokenizer: BertTokenizer) -> BertForMaskedLM:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    return BertForMaskedLM(config).eval()
