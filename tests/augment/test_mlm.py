"""Masked-LM replacement against the model's own top-k, and load_mlm's refusal."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, BertModel, BertTokenizer

from distill.augment.mlm import MaskedLMReplacement, load_mlm
from distill.errors import DistillError
from tests.augment.conftest import NOT_WORDS, SPECIAL, VOCAB


def _top_k_by_hand(model: BertForMaskedLM, word: str, k: int) -> list[str]:
    """The one-word row masked: [CLS] [MASK] [SEP]; the k best entries that are neither
    special, nor a piece, nor punctuation, nor the word."""
    ids = torch.tensor([[VOCAB.index("[CLS]"), VOCAB.index("[MASK]"), VOCAB.index("[SEP]")]])
    with torch.no_grad():
        scores = model(input_ids=ids).logits[0, 1]
    banned = SPECIAL + NOT_WORDS + [word]
    ranked = [VOCAB[i] for i in scores.argsort(descending=True).tolist()]
    return [token for token in ranked if token not in banned][:k]


def test_candidates_are_the_models_top_k(
    tiny_mlm: BertForMaskedLM, tiny_tokenizer: BertTokenizer
) -> None:
    replacer = MaskedLMReplacement(tiny_mlm, tiny_tokenizer, p=1.0, k=4)
    expected = _top_k_by_hand(tiny_mlm, "good", 4)
    assert len(expected) == 4
    assert replacer.candidates("good") == [tuple(expected)]
    chosen = {replacer("Good,", random.Random(seed)) for seed in range(200)}
    assert chosen == {word.capitalize() + "," for word in expected}


def test_only_single_piece_words_are_replaced(
    tiny_mlm: BertForMaskedLM, tiny_tokenizer: BertTokenizer
) -> None:
    replacer = MaskedLMReplacement(tiny_mlm, tiny_tokenizer, p=1.0, k=3)
    candidates = replacer.candidates("the films zebra is good .")
    assert [len(options) for options in candidates] == [3, 0, 0, 3, 3, 0]
    out = replacer("the films zebra is good .", random.Random(0)).split()
    assert out[1:3] == ["films", "zebra"] and out[5] == "."
    assert out[0] != "the" and out[3] != "is" and out[4] != "good"


def test_batching_does_not_change_the_candidates(
    tiny_mlm: BertForMaskedLM, tiny_tokenizer: BertTokenizer
) -> None:
    texts = ["the film is good", "a bad plot", "nice movie , great plot .", "awful"]
    one_by_one = MaskedLMReplacement(tiny_mlm, tiny_tokenizer, p=0.4, k=3, max_batch_tokens=1)
    batched = MaskedLMReplacement(tiny_mlm, tiny_tokenizer, p=0.4, k=3)
    batched.prepare(texts)
    for text in texts:
        assert batched.candidates(text) == one_by_one.candidates(text)


def test_deterministic_for_a_seed_and_different_across_seeds(
    tiny_mlm: BertForMaskedLM, tiny_tokenizer: BertTokenizer
) -> None:
    replacer = MaskedLMReplacement(tiny_mlm, tiny_tokenizer, p=0.4, k=3)
    text = "the film is good and the plot is nice but the movie is bad"
    first = replacer(text, random.Random(0))
    assert first == replacer(text, random.Random(0))
    assert first != replacer(text, random.Random(1))


def _save(model: torch.nn.Module, tokenizer: BertTokenizer, folder: Path) -> str:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _config() -> BertConfig:
    return BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )


def test_load_mlm_refuses_a_model_without_the_head(
    tmp_path: Path, tiny_tokenizer: BertTokenizer
) -> None:
    spec = _save(BertModel(_config()), tiny_tokenizer, tmp_path / "bare")
    with pytest.raises(DistillError) as error:
        load_mlm(spec)
    assert str(error.value) == (
        f"data.augment.mlm_model: {spec} has no masked-LM head (it loads as BertModel); "
        "give a masked LM such as bert-base-uncased"
    )


def test_load_mlm_accepts_a_masked_lm(tmp_path: Path, tiny_tokenizer: BertTokenizer) -> None:
    saved = BertForMaskedLM(_config())
    spec = _save(saved, tiny_tokenizer, tmp_path / "mlm")
    model, tokenizer = load_mlm(spec)
    assert isinstance(model, BertForMaskedLM) and not model.training
    assert tokenizer.mask_token == "[MASK]"
    assert torch.equal(model.cls.predictions.bias, saved.cls.predictions.bias)
