"""The causal-LM teacher cache: top-k log-probabilities of the response positions, the same
values as the live teacher's, built once, rebuilt when damaged, and its size per token."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from distill.data.instructions import InstructionBatches, InstructionRows, encode_instructions
from distill.models.capture import forward
from distill.objectives import build_objective
from distill.teacher.lm_cache import bytes_per_token, entry_key, load_or_build

ROWS = InstructionRows(
    ["say hi", "what is the capital of france", "say hello"], ["hello", "paris", "hi yes"], "t"
)


@pytest.fixture()
def setup(tiny_llama_dir: Path, lm_tokenizer):
    teacher = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    return teacher, lm_tokenizer, encode_instructions(ROWS, lm_tokenizer, 32)


def test_cached_top_k_matches_the_live_teacher(tmp_path: Path, setup) -> None:
    teacher, tokenizer, encoded = setup
    batch = InstructionBatches(encoded, 0).collate(None, [2, 0, 1])  # not in cache order
    student = AutoModelForCausalLM.from_pretrained(teacher.name_or_path)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p) * 0.3)
        out = forward(student, batch, frozenset())
        live = forward(teacher, batch, frozenset())
    full, _ = load_or_build(tmp_path, teacher, tokenizer, encoded, 0, 64, 1.0, 2)
    sparse, _ = load_or_build(tmp_path, teacher, tokenizer, encoded, 0, 4, 1.0, 2)
    assert full.values.shape == (encoded.response_tokens(), 17)  # k capped at the vocabulary
    for name in ("forward_kl", "reverse_kl", "jsd"):
        objective = build_objective(name, None, {}, "o")
        dense = float(objective(batch, out, live))
        assert float(objective(batch, out, full(batch))) == pytest.approx(dense, rel=2e-3)
        assert float(objective(batch, out, sparse(batch))) < dense  # 4 tokens + the rest
    # the stored values are the top log-probabilities of the response positions
    top = sparse(batch).token_top_k
    log_probs = torch.log_softmax(live.logits, -1)
    position = encoded.response_starts[2] - 1  # row 2 is the batch's first row
    expected = log_probs[0, position].topk(4)
    assert torch.allclose(top.log_probs[0, position], expected.values, atol=2e-3)
    assert top.indices[0, position].tolist() == expected.indices.tolist()


def test_an_entry_is_built_once_and_rebuilt_when_damaged(tmp_path: Path, setup) -> None:
    teacher, tokenizer, encoded = setup
    first, hit = load_or_build(tmp_path, teacher, tokenizer, encoded, 0, 4, 1.0, 2)
    assert not hit
    calls = []
    teacher.register_forward_hook(lambda *args: calls.append(1))
    again, hit = load_or_build(tmp_path, teacher, tokenizer, encoded, 0, 4, 1.0, 2)
    assert hit and not calls and again.key == first.key
    # the pass that built the entry is timed once and read back by every run reusing it
    assert first.build_seconds is not None and first.build_seconds >= 0
    assert again.build_seconds == first.build_seconds
    _, hit = load_or_build(tmp_path, teacher, tokenizer, encoded, 0, 4, 2.0, 2)
    assert not hit  # another temperature is another entry
    before = np.array(first.values)
    values = np.load(tmp_path / first.key / "values.npy", mmap_mode="r+")
    values[0, 0] += 1
    values.flush()
    del values
    calls.clear()
    rebuilt, hit = load_or_build(tmp_path, teacher, tokenizer, encoded, 0, 4, 1.0, 2)
    assert not hit and len(calls) == 2  # one pass over the 3 rows in batches of 2
    np.testing.assert_array_equal(np.array(rebuilt.values), before)


def test_the_entry_key_follows_everything_that_changes_the_values(setup) -> None:
    """Another teacher weight, other rows, another k or temperature: another entry."""
    teacher, tokenizer, encoded = setup
    key = entry_key(teacher, tokenizer, encoded, 4, 1.0)
    assert entry_key(teacher, tokenizer, encoded, 4, 1.0) == key
    other_rows = encode_instructions(
        InstructionRows(ROWS.prompts, ["hello", "paris", "hi"], "t"), tokenizer, 32
    )
    changed = [
        entry_key(teacher, tokenizer, other_rows, 4, 1.0),
        entry_key(teacher, tokenizer, encoded, 5, 1.0),
        entry_key(teacher, tokenizer, encoded, 4, 2.0),
    ]
    with torch.no_grad():
        next(teacher.parameters()).view(-1)[0] += 1e-3
    changed.append(entry_key(teacher, tokenizer, encoded, 4, 1.0))
    assert len({key, *changed}) == 5


def test_bytes_per_token() -> None:
    # float16 values and uint16 ids while the vocabulary fits (SmolLM2's 49,152 does)
    assert bytes_per_token(64, 49152) == 256 and bytes_per_token(50, 49152) == 200
    assert bytes_per_token(64, 128_256) == 384  # int32 ids beyond 65,536 tokens
