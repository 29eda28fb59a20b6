"""Masking: each word becomes the mask token with probability p.

Tang et al. 2019, "Distilling Task-Specific Knowledge from BERT into Simple Neural Networks".
They apply masking and n-gram sampling in one pass over a row; here each is its own method
(data.augment.methods lists either or both, and the copies alternate between them).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from distill.augment.words import join_words, split_words


def mask_words(text: str, mask_token: str, p: float, rng: random.Random) -> str:
    """Replace each word's core by `mask_token` independently with probability `p`.

    Punctuation around a word stays ("film," -> "[MASK],"); tokens of punctuation only, and the
    mask token itself (its brackets would read as punctuation: "[[MASK]]"), are not words and
    are never masked (and draw no random number).
    """
    out = []
    for word in split_words(text):
        masked = bool(word.core) and str(word) != mask_token and rng.random() < p
        out.append(word.with_core(mask_token) if masked else word)
    return join_words(out)


@dataclass
class MaskWords:
    """The `mask` method: `mask_token` is the teacher tokenizer's mask token (its unknown token
    when it has none), so the teacher reads it as one token."""

    mask_token: str
    p: float

    def prepare(self, texts: Sequence[str]) -> None:
        """Nothing to compute ahead."""

    def __call__(self, text: str, rng: random.Random) -> str:
        return mask_words(text, self.mask_token, self.p, rng)
