"""Prefill and decode speed: what is timed is one prefill pass over the whole prompt and then
one single-token step per new token that reads the KV cache, at each batch size."""

from __future__ import annotations

import functools
from pathlib import Path

from transformers import AutoModelForCausalLM

from distill.evaluation.lm_speed import generation_speed


def test_prefill_is_one_pass_and_decode_one_cached_token_per_step(tiny_llama_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    calls: list[tuple[tuple[int, ...], int, bool]] = []
    original = model.forward

    @functools.wraps(original)  # the same signature: generation_speed reads it
    def recording(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        past = kwargs.get("cache", kwargs.get("past_key_values"))
        cached = 0 if past is None else past.get_seq_length()
        output = original(*args, **kwargs)
        calls.append((tuple(kwargs["input_ids"].shape), cached, output.logits.shape[1] == 1))
        return output

    model.forward = recording
    speeds = generation_speed(model, batch_sizes=(1, 3), prompt_tokens=20, new_tokens=5, repeats=2)
    assert set(speeds) == {
        f"{stage}_tokens_per_second_batch{b}" for stage in ("prefill", "decode") for b in (1, 3)
    }
    assert all(value > 0 for value in speeds.values())
    for batch, start in ((1, 0), (3, 13)):  # per batch size: warm-up, then 2 x (1 + 5) calls
        mine = calls[start : start + 13]
        assert mine[0][0] == (batch, 8)  # warm-up on the first 8 tokens
        for repeat in range(2):
            prefill, *steps = mine[1 + 6 * repeat : 7 + 6 * repeat]
            assert prefill == ((batch, 20), 0, True)  # the whole prompt, last logits only
            # each decode step: one token per row, reading a cache that grows by one
            assert steps == [((batch, 1), 20 + i, True) for i in range(5)]
    assert len(calls) == 26 and model.training is False
