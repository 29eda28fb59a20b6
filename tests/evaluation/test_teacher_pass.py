"""The teacher's held-out pass, cached: the same perplexity and choices as a live pass, a hand
check of perplexity and agreement, built once, keyed by the weights and the rows, and rebuilt
when damaged."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

import distill.evaluation.teacher_pass as cached_pass
from distill.data.instructions import InstructionBatches, InstructionRows, encode_instructions
from distill.evaluation.lm_scores import response_pass, response_scores
from distill.evaluation.teacher_pass import teacher_pass

ROWS = InstructionRows(
    ["say hi", "what is the capital of france", "say hello"], ["hello", "paris", "hi yes"], "t"
)


@pytest.fixture()
def models(tiny_llama_dir: Path, lm_tokenizer):
    teacher = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    student = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return teacher, student, encode_instructions(ROWS, lm_tokenizer, 32)


def test_perplexity_and_agreement_against_a_hand_computation(models) -> None:
    teacher, student, encoded = models
    batch = InstructionBatches(encoded, 0).collate(None, [0, 1, 2])
    with torch.no_grad():
        s_logits = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        t_logits = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    nll, agreed, tokens = 0.0, 0, 0
    for row, (ids, start) in enumerate(
        zip(encoded.input_ids, encoded.response_starts, strict=True)
    ):
        for position in range(start - 1, len(ids) - 1):  # each response token predicted
            logits = s_logits.logits[row, position]
            nll -= float(F.log_softmax(logits, -1)[ids[position + 1]])
            agreed += int(logits.argmax() == t_logits.logits[row, position].argmax())
            tokens += 1
    scores = response_scores(student, encoded, 0, teacher, batch_size=2)
    assert scores["response_tokens"] == tokens == encoded.response_tokens()
    assert scores["perplexity"] == pytest.approx(math.exp(nll / tokens), rel=1e-5)
    assert scores["agreement"] == pytest.approx(agreed / tokens)
    assert 0 < agreed < tokens  # the check can tell agreement from its absence
    assert response_scores(teacher, encoded, 0, teacher)["agreement"] == 1.0


def test_the_cached_pass_equals_the_live_one_and_is_computed_once(
    tmp_path: Path, models, monkeypatch: pytest.MonkeyPatch
) -> None:
    teacher, student, encoded = models
    first, hit = teacher_pass(tmp_path, teacher, encoded, 0)
    assert not hit and len(list(tmp_path.glob("lm-eval-*.npz"))) == 1
    monkeypatch.setattr(cached_pass, "response_pass", lambda *a, **k: pytest.fail("recomputed"))
    again, hit = teacher_pass(tmp_path, teacher, encoded, 0)
    assert hit
    live = response_pass(teacher, encoded, 0)
    assert again.scores() == pytest.approx(live.scores()) == first.scores()
    assert torch.equal(again.choices, live.choices)
    # a student's agreement against the cached choices is the live teacher's
    own = response_pass(student, encoded, 0)
    assert own.scores(again.choices) == response_scores(student, encoded, 0, teacher)


def test_the_key_follows_the_weights_and_the_rows(tmp_path: Path, models, lm_tokenizer) -> None:
    teacher, student, encoded = models
    key = cached_pass.entry_key(teacher, encoded)
    assert cached_pass.entry_key(student, encoded) != key
    fewer = encode_instructions(ROWS.head(2), lm_tokenizer, 32)
    assert cached_pass.entry_key(teacher, fewer) != key
    moved = encode_instructions(ROWS, lm_tokenizer, 32)
    assert cached_pass.entry_key(teacher, moved) == key


def test_a_damaged_entry_is_recomputed(tmp_path: Path, models) -> None:
    teacher, _, encoded = models
    first, _ = teacher_pass(tmp_path, teacher, encoded, 0)
    (path,) = tmp_path.glob("lm-eval-*.npz")
    path.write_bytes(path.read_bytes()[:100])
    again, hit = teacher_pass(tmp_path, teacher, encoded, 0)
    assert not hit and again.scores() == first.scores()


def test_choices_of_other_rows_are_refused(models, lm_tokenizer) -> None:
    teacher, student, encoded = models
    fewer = encode_instructions(ROWS.head(2), lm_tokenizer, 32)
    with pytest.raises(ValueError, match="same tokens"):
        response_pass(student, encoded, 0).scores(response_pass(teacher, fewer, 0).choices)
