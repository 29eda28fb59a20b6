"""How much generated answers repeat themselves: Welleck et al. 2019's seq-rep-n, the share of an
answer's word n-grams that are repeats of an n-gram earlier in the same answer. A weak language
model decoded greedily falls into loops ("the sentence is a sentence that is a sentence...");
this measures it, so a student's loops can be told apart from its teacher's habits."""

from __future__ import annotations

import re

WORDS = re.compile(r"\w+|[^\w\s]")


def repeated_ngram_share(text: str, n: int = 4) -> float:
    """1 - distinct n-grams / n-grams of one text's lower-cased words and punctuation marks;
    0 for a text shorter than n words (nothing can repeat)."""
    words = WORDS.findall(text.lower())
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def repetition(texts: list[str], n: int = 4) -> float:
    """Mean seq-rep-n over texts (0 when there are none)."""
    return sum(repeated_ngram_share(t, n) for t in texts) / max(len(texts), 1)
