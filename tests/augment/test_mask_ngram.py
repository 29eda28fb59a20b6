"""Tang et al.'s two methods: masking rate and n-gram shape."""

from __future__ import annotations

import random

import pytest

from distill.augment.mask import mask_words
from distill.augment.ngram import random_ngram


@pytest.mark.parametrize("p", [0.1, 0.4])
def test_mask_rate_is_close_to_p(p: float) -> None:
    # 10,000 words: the masked count is Binomial(10,000, p), sd = sqrt(10,000 p (1 - p)), 30
    # for p = 0.1. Five sd: a correct implementation fails for under 1 seed in a million,
    # while a rate off by a third of p (0.1 vs 0.133) is 11 sd away.
    words = [f"w{i}" for i in range(10_000)]
    out = mask_words(" ".join(words), "[MASK]", p, random.Random(0)).split()
    assert len(out) == len(words)
    masked = sum(token == "[MASK]" for token in out)
    sd = (10_000 * p * (1 - p)) ** 0.5
    assert abs(masked - 10_000 * p) < 5 * sd
    # Unmasked words are the source words in place.
    assert all(a == b for a, b in zip(out, words, strict=True) if a != "[MASK]")


def test_mask_keeps_punctuation_and_never_masks_punctuation_tokens() -> None:
    out = mask_words('"good," he said .', "[MASK]", 1.0, random.Random(0))
    assert out == '"[MASK]," [MASK] [MASK] .'


def test_mask_is_deterministic_for_a_seed_and_differs_across_seeds() -> None:
    text = " ".join(f"w{i}" for i in range(50))
    first = mask_words(text, "[MASK]", 0.3, random.Random(1))
    assert first == mask_words(text, "[MASK]", 0.3, random.Random(1))
    assert first != mask_words(text, "[MASK]", 0.3, random.Random(2))


def test_ngram_is_a_contiguous_run_of_one_to_n_max_words() -> None:
    words = [f"w{i}" for i in range(12)]
    lengths, starts = set(), set()
    for seed in range(2000):
        out = random_ngram(" ".join(words), 1.0, 5, random.Random(seed)).split()
        start = words.index(out[0])
        assert out == words[start : start + len(out)]
        lengths.add(len(out))
        starts.add(start)
    assert lengths == {1, 2, 3, 4, 5}
    assert starts == set(range(12))


def test_ngram_length_is_capped_by_the_row() -> None:
    lengths = {len(random_ngram("a b c", 1.0, 5, random.Random(s)).split()) for s in range(300)}
    assert lengths == {1, 2, 3}


def test_ngram_rate_is_close_to_p() -> None:
    # 4,000 rows of 12 words (n <= 5, so an n-gram always differs from the row): the changed
    # share has sd sqrt(0.25 * 0.75 / 4000) = 0.0068; allow five.
    text = " ".join(f"w{i}" for i in range(12))
    changed = sum(random_ngram(text, 0.25, 5, random.Random(s)) != text for s in range(4000))
    assert abs(changed / 4000 - 0.25) < 5 * 0.0068
