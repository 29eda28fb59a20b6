"""Generation for causal LMs (batched with left padding, seeded sampling, stop at the end of
the turn) and ROUGE-L against hand values."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from distill.errors import DistillError
from distill.evaluation.repetition import repetition
from distill.evaluation.rouge import rouge_l
from distill.models.generation import Penalties, generate_responses

PROMPTS = ["say hi", "what is the capital of france", "say hello", "is paris the capital"]


def test_rouge_l_against_hand_values() -> None:
    assert rouge_l(["the capital is paris"], ["the capital is paris"]) == pytest.approx(100.0)
    # longest common subsequence "the capital": 2 of 4 predicted and 2 of 6 reference words,
    # P 0.5, R 1/3, F 2PR/(P+R) = 0.4
    assert rouge_l(["Paris is the capital."], ["The capital of France is Paris."]) == (
        pytest.approx(40.0)
    )
    assert rouge_l(["a", "b"], ["a", "c"]) == pytest.approx(50.0)


def test_batched_greedy_generation_equals_one_prompt_at_a_time(
    tiny_llama_dir: Path, lm_tokenizer
) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    batched = generate_responses(model, lm_tokenizer, PROMPTS, max_new_tokens=6, batch_size=4)
    alone = [
        generate_responses(model, lm_tokenizer, [p], max_new_tokens=6).texts[0] for p in PROMPTS
    ]
    assert batched.texts == alone  # left padding changes nothing
    assert 0 < batched.new_tokens <= 4 * 6
    assert all("<|end|>" not in text and "<pad>" not in text for text in batched.texts)


def test_an_answer_cut_by_max_new_tokens_did_not_end_its_turn(
    tiny_llama_dir: Path, lm_tokenizer
) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    with torch.no_grad():  # every logit 0: greedy picks token 0, <pad>, and never stops
        model.get_output_embeddings().weight.zero_()
    looping = generate_responses(model, lm_tokenizer, PROMPTS, max_new_tokens=5)
    assert looping.ended_turn == [False] * 4 and looping.new_tokens == 4 * 5
    # (answers that do end their turn: the fine-tuned student of tests/modes/test_causal_lm.py)


def test_sampling_is_seeded(tiny_llama_dir: Path, lm_tokenizer) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)

    def sample(seed: int) -> list[str]:
        kwargs = {"max_new_tokens": 8, "do_sample": True, "temperature": 1.5, "seed": seed}
        return generate_responses(model, lm_tokenizer, PROMPTS * 3, **kwargs).texts

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_penalties_reach_generation(tiny_llama_dir: Path, lm_tokenizer) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    with torch.no_grad():  # every logit 0: ties, which greedy breaks towards the lowest id
        model.get_output_embeddings().weight.zero_()
    # no 1-gram twice: the prompt's tokens are banned, <pad> (id 0) is said once, then the
    # lowest id left is <eos> (1), which ends the turn: two tokens per answer (one prompt at a
    # time: a batch's left padding would ban <pad> from the start)
    once = Penalties(no_repeat_ngram_size=1)
    banned = generate_responses(
        model, lm_tokenizer, PROMPTS, max_new_tokens=5, batch_size=1, penalties=once
    )
    assert banned.ended_turn == [True] * 4 and banned.new_tokens == 4 * 2


def test_repetition_penalty_changes_a_random_models_answers(
    tiny_llama_dir: Path, lm_tokenizer
) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    plain = generate_responses(model, lm_tokenizer, PROMPTS, max_new_tokens=12)
    penalised = generate_responses(
        model, lm_tokenizer, PROMPTS, max_new_tokens=12, penalties=Penalties(100.0)
    )
    assert repetition(penalised.texts, n=1) < repetition(plain.texts, n=1)


@pytest.mark.parametrize(
    ("penalties", "message"),
    [
        ({"repetition_penalty": 0.0}, "--repetition-penalty: 0 is not positive"),
        ({"no_repeat_ngram_size": -1}, "--no-repeat-ngram-size: -1 is negative"),
    ],
)
def test_bad_penalties_are_refused_in_one_line(penalties: dict, message: str) -> None:
    with pytest.raises(DistillError, match=message):
        Penalties(**penalties)
