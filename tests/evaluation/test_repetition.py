"""seq-rep-n (Welleck et al. 2019) against hand counts."""

from __future__ import annotations

import pytest

from distill.evaluation.repetition import repeated_ngram_share, repetition


def test_repeated_ngram_share_against_hand_counts() -> None:
    # "a b a b a b": 2-grams ab ba ab ba ab, 2 distinct of 5 -> 1 - 2/5
    assert repeated_ngram_share("a b a b a b", n=2) == pytest.approx(0.6)
    # one sentence of 6 words (the full stop is one) said three times: 18 words, 15 4-grams,
    # 6 distinct (one per word of the sentence the 4-gram starts at)
    loop = "the sentence is a sentence. " * 3
    assert repeated_ngram_share(loop) == pytest.approx(1 - 6 / 15)
    # nothing repeats; case and punctuation count as words
    assert repeated_ngram_share("The capital of France is Paris.") == 0.0
    assert repeated_ngram_share("Paris paris PARIS", n=1) == pytest.approx(1 - 1 / 3)
    # shorter than n words: nothing can repeat
    assert repeated_ngram_share("yes no", n=4) == 0.0


def test_repetition_is_the_mean_over_answers() -> None:
    assert repetition(["a b a b a b", "a b c"], n=2) == pytest.approx((0.6 + 0.0) / 2)
    assert repetition([]) == 0.0
