"""augment_examples: the registry, copies and methods, pairs, duplicates, seeds, errors."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import BertForMaskedLM, BertTokenizer

from distill.augment import ATTEMPTS, METHODS, _rng, augment_examples
from distill.data.config import AUGMENT_METHODS, AugmentConfig
from distill.data.load import Examples
from distill.errors import DistillError
from tests.augment.conftest import ANGLES

WORDS = list(ANGLES)


def _rows(count: int, length: int, seed: int = 0) -> list[str]:
    draw = random.Random(seed)
    return [" ".join(draw.choice(WORDS) for _ in range(length)) for _ in range(count)]


def _config(**fields: object) -> AugmentConfig:
    return AugmentConfig.model_validate({"mlm_model": "tiny", **fields})


def test_the_registry_names_exactly_the_recipe_methods() -> None:
    assert tuple(METHODS) == AUGMENT_METHODS


def test_seeding_does_not_depend_on_the_process() -> None:
    # Python's hash() of a string is salted per process; a value pinned here would then change
    # from run to run. blake2b of the parts does not.
    assert _rng(0, "mask", 0, 0, 0, 0).random() == _rng(0, "mask", 0, 0, 0, 0).random()
    assert _rng(0, "mask", 0, 0, 0, 0).getrandbits(32) == 1_893_144_909


@pytest.mark.parametrize("method", AUGMENT_METHODS)
def test_each_method_is_reproducible_and_seed_dependent(
    method: str,
    tiny_tokenizer: BertTokenizer,
    tiny_embeddings: torch.Tensor,
    tiny_mlm: BertForMaskedLM,
) -> None:
    examples = Examples(_rows(30, 8), None, [0] * 30)
    inputs = {"embeddings": tiny_embeddings, "mlm": (tiny_mlm, tiny_tokenizer)}

    def run(seed: int) -> Examples:
        config = _config(methods=[method], copies=3, seed=seed)
        return augment_examples(examples, config, tiny_tokenizer, **inputs)

    first, again, other = run(0), run(0), run(1)
    assert first.texts == again.texts
    assert first.texts != other.texts
    # Most copies are filled: n-gram sampling changes a row with p = 0.25 per try.
    assert len(first) > {"ngram": 0.4}.get(method, 0.9) * 90
    assert first.labels == [None] * len(first)
    assert first.text_pairs is None
    assert not set(first.texts) & set(examples.texts)
    assert len(set(first.texts)) == len(first)


def test_copies_take_turns_with_the_methods_starting_one_further_each_row() -> None:
    examples = Examples(_rows(20, 10), None, [1] * 20)
    lines: list[str] = []
    config = _config(methods=["mask", "ngram"], copies=4, mask_p=0.5, ngram_p=1.0)
    out = augment_examples(examples, config, _Tokenizer(), say=lines.append)
    assert len(out) == 80  # 10-word rows: no duplicates to expect
    for row, source in enumerate(examples.texts):
        made = out.texts[4 * row : 4 * row + 4]
        masked = (0, 2) if row % 2 == 0 else (1, 3)  # copy i of row r: methods[(r + i) % 2]
        for copy in range(4):
            if copy in masked:  # mask: every word kept or masked, in place
                assert len(made[copy].split()) == 10 and "[MASK]" in made[copy]
            else:  # ngram: a run of at most 5 of the row's words
                assert made[copy] in source and len(made[copy].split()) <= 5
    assert lines == [
        "augmented 20 rows -> 80 new rows (mask 40, ngram 40); "
        f"0 copies dropped (unchanged or duplicate after {ATTEMPTS} tries)"
    ]


def test_pairs_are_augmented_side_by_side_independently() -> None:
    texts = _rows(100, 6)
    examples = Examples(texts, list(texts), [0] * 100)  # both sides the same text
    out = augment_examples(examples, _config(methods=["mask"], copies=1, mask_p=0.5), _Tokenizer())
    assert out.text_pairs is not None and len(out.text_pairs) == len(out.texts) == len(out)
    assert len(out) >= 95
    # One generator for both sides would mask the same words; independent draws agree on all
    # 6 words with probability (1/2)^6.
    differ = sum(a != b for a, b in zip(out.texts, out.text_pairs, strict=True))
    assert differ >= 0.9 * len(out)
    assert out.labels == [None] * len(out)


def test_rows_equal_to_a_source_or_another_new_row_are_dropped() -> None:
    # mask_p = 1: "good" -> "[MASK]", a source row; "fine film" -> "[MASK] [MASK]", once
    # (its second copy duplicates the first); "[MASK]" -> itself.
    examples = Examples(["[MASK]", "good", "fine film"], None, [0, 1, 0])
    lines: list[str] = []
    config = _config(methods=["mask"], copies=2, mask_p=1.0)
    out = augment_examples(examples, config, _Tokenizer(), say=lines.append)
    assert out.texts == ["[MASK] [MASK]"]
    assert lines[0].startswith("augmented 3 rows -> 1 new rows (mask 1); 5 copies dropped")


def test_a_row_left_whole_is_dropped_even_with_other_spacing() -> None:
    examples = Examples(["good  film ", "bad plot"], None, [0, 1])
    config = _config(methods=["ngram"], copies=3, ngram_p=1e-9)
    assert augment_examples(examples, config, _Tokenizer()).texts == []


def test_retries_fill_copies_of_a_rarely_changing_method() -> None:
    # ngram_p = 0.25: one try fills a copy with p 0.25, three tries with 1 - 0.75^3 = 0.58.
    examples = Examples(_rows(200, 12), None, [0] * 200)
    out = augment_examples(examples, _config(methods=["ngram"], copies=1), _Tokenizer())
    assert 0.50 * 200 < len(out) < 0.66 * 200


def test_missing_inputs_are_named(tiny_tokenizer: BertTokenizer) -> None:
    examples = Examples(["good film"], None, [0])
    with pytest.raises(DistillError, match=r"^data\.augment\.methods: neighbours needs"):
        augment_examples(examples, _config(methods=["neighbours"]), tiny_tokenizer)
    with pytest.raises(DistillError, match=r"^data\.augment\.methods: mlm needs"):
        augment_examples(examples, _config(methods=["mlm"]), tiny_tokenizer)
    # Every listed method is used (rows take turns), so each is checked even with one copy.
    config = _config(methods=["mask", "neighbours"], copies=1, mask_p=1.0)
    with pytest.raises(DistillError, match=r"neighbours needs"):
        augment_examples(examples, config, tiny_tokenizer)


class _Tokenizer:
    """What mask reads of a tokenizer; enough for the methods that need no vocabulary."""

    mask_token = "[MASK]"
    unk_token = "[UNK]"
