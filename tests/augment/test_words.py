"""Words keep their punctuation outside, so replacing a word keeps it."""

from __future__ import annotations

from distill.augment.words import Word, join_words, match_case, normalise, split_words


def test_punctuation_stays_outside_the_core() -> None:
    words = split_words("(good), don't well-made ... $5 's")
    assert words == [
        Word("(", "good", "),"),
        Word("", "don't", ""),
        Word("", "well-made", ""),
        Word("...", "", ""),
        Word("$", "5", ""),
        Word("'", "s", ""),
    ]
    assert words[0].with_core("[MASK]") == "([MASK]),"


def test_joining_rebuilds_space_tokenised_text() -> None:
    text = "it 's a charming , often funny film ."
    assert join_words(split_words(text)) == text
    assert join_words(split_words("  two   spaces\tand a tab ")) == "two spaces and a tab"
    assert normalise(" a  b ") == "a b"


def test_case_of_the_first_letter_is_kept() -> None:
    assert match_case("Good", "great") == "Great"
    assert match_case("good", "great") == "great"
    assert match_case("Good", "") == ""
