"""N-gram sampling: with probability p a row becomes a random contiguous n-gram of its words.

Tang et al. 2019, "Distilling Task-Specific Knowledge from BERT into Simple Neural Networks".
They apply masking and n-gram sampling in one pass over a row; here each is its own method.
A row left whole (probability 1 - p, or n as long as the row) equals its source and is dropped
by `augment_examples`, which retries a few times to fill its copies.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from distill.augment.words import join_words


def random_ngram(text: str, p: float, n_max: int, rng: random.Random) -> str:
    """With probability `p`, `n` contiguous whitespace tokens of `text`, n uniform in
    1..min(n_max, tokens), the start uniform among the places it fits; otherwise `text`
    (its spacing normalised)."""
    tokens = text.split()
    if not tokens or rng.random() >= p:
        return join_words(tokens)
    n = rng.randint(1, min(n_max, len(tokens)))
    start = rng.randint(0, len(tokens) - n)
    return join_words(tokens[start : start + n])


@dataclass
class RandomNgram:
    """The `ngram` method."""

    p: float
    n_max: int

    def prepare(self, texts: Sequence[str]) -> None:
        """Nothing to compute ahead."""

    def __call__(self, text: str, rng: random.Random) -> str:
        return random_ngram(text, self.p, self.n_max, rng)
