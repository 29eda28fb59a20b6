"""Neighbours in the teacher's embedding space, against a hand computation of cosines."""

from __future__ import annotations

import math
import random

import torch
from transformers import BertTokenizer

from distill.augment.neighbours import EmbeddingNeighbours, replace_with_neighbours
from distill.augment.vocab import lowercases, whole_words
from tests.augment.conftest import ANGLES, NOT_WORDS, SPECIAL


def _by_hand(word: str, k: int) -> list[str]:
    """The k words of largest cos(angle difference), the word itself left out."""
    others = [w for w in ANGLES if w != word]
    return sorted(others, key=lambda w: -math.cos(math.radians(ANGLES[w] - ANGLES[word])))[:k]


def test_whole_words_are_the_plain_entries(tiny_tokenizer: BertTokenizer) -> None:
    words = set(whole_words(tiny_tokenizer).values())
    assert words == set(ANGLES) | {",", "."}  # punctuation is whole; neighbours drop it
    assert lowercases(tiny_tokenizer)


def test_neighbours_are_the_k_nearest_by_cosine(
    tiny_tokenizer: BertTokenizer, tiny_embeddings: torch.Tensor
) -> None:
    neighbours = EmbeddingNeighbours(tiny_tokenizer, tiny_embeddings, k=3)
    assert _by_hand("good", 3) == ["great", "fine", "nice"]  # the hand computation itself
    for word in ("good", "film", "bad", "okay"):
        found = neighbours.of(word)
        assert list(found) == _by_hand(word, 3)
        assert word not in found
        assert not set(found) & set(SPECIAL + NOT_WORDS)
    # "okay" is 100 times longer than the others: a dot product would rank it first for "great".
    assert neighbours.of("great") == ("good", "fine", "nice")
    assert neighbours.of("Good") == neighbours.of("good")  # the tokenizer lowercases
    assert neighbours.of("films") == ()  # two pieces: not a whole-word entry
    assert neighbours.of("zebra") == ()
    assert neighbours.of(",") == ()


def test_replacement_is_uniform_over_the_neighbours(
    tiny_tokenizer: BertTokenizer, tiny_embeddings: torch.Tensor
) -> None:
    neighbours = EmbeddingNeighbours(tiny_tokenizer, tiny_embeddings, k=3)
    outputs = [
        replace_with_neighbours("Good, films zebra", neighbours, 1.0, random.Random(seed))
        for seed in range(300)
    ]
    chosen = [out.split()[0] for out in outputs]
    assert set(chosen) == {"Great,", "Fine,", "Nice,"}  # case and punctuation kept
    assert min(chosen.count(w) for w in set(chosen)) > 60  # about 100 each of 300
    assert {out.split(maxsplit=1)[1] for out in outputs} == {"films zebra"}  # not candidates


def test_replacement_rate_is_close_to_p(
    tiny_tokenizer: BertTokenizer, tiny_embeddings: torch.Tensor
) -> None:
    # 4,000 words, p = 0.4: sd sqrt(4000 * 0.4 * 0.6) = 31; allow five.
    neighbours = EmbeddingNeighbours(tiny_tokenizer, tiny_embeddings, k=2)
    text = " ".join(["good", "film"] * 2000)
    out = replace_with_neighbours(text, neighbours, 0.4, random.Random(0)).split()
    changed = sum(a != b for a, b in zip(out, text.split(), strict=True))
    assert abs(changed - 1600) < 5 * 31
