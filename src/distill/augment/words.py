"""Words of a text: whitespace tokens, each with its core word and the punctuation around it,
so a method can change the word and keep the punctuation (GLUE text is mostly space-tokenised).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Word:
    """One whitespace token: `prefix + core + suffix`; a token of punctuation only is all prefix
    (its core is empty, so no method changes it)."""

    prefix: str
    core: str
    suffix: str

    def __str__(self) -> str:
        return self.prefix + self.core + self.suffix

    def with_core(self, core: str) -> str:
        """The token with its core replaced, its punctuation kept."""
        return self.prefix + core + self.suffix


def split_words(text: str) -> list[Word]:
    """Split on whitespace; strip leading and trailing punctuation off each token into its
    prefix and suffix ("(good)," -> "(", "good", "),"). Inner punctuation stays in the core
    ("don't", "well-made")."""
    words = []
    for token in text.split():
        start = 0
        while start < len(token) and is_punctuation(token[start]):
            start += 1
        if start == len(token):
            words.append(Word(token, "", ""))
            continue
        end = len(token)
        while is_punctuation(token[end - 1]):
            end -= 1
        words.append(Word(token[:start], token[start:end], token[end:]))
    return words


def join_words(tokens: Iterable[str | Word]) -> str:
    """The text again: tokens joined by single spaces (so runs of whitespace become one)."""
    return " ".join(str(token) for token in tokens)


def normalise(text: str) -> str:
    """`text` as every method writes it, so "unchanged" and "duplicate" ignore spacing."""
    return " ".join(text.split())


def match_case(original: str, replacement: str) -> str:
    """`replacement` with a capital first letter when `original` has one (an uncased
    vocabulary gives lowercase words; "Good" becomes "Great", not "great")."""
    if original[:1].isupper() and replacement:
        return replacement[0].upper() + replacement[1:]
    return replacement


def is_punctuation(char: str) -> bool:
    """BERT's rule: ASCII symbols that are not letters or digits ($, ', -, ...) and every
    Unicode punctuation character; WordPiece splits words at exactly these."""
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")
