"""Generation speed of a causal LM, in the two regimes that decide it: prefill (the prompt in
one forward pass that fills the KV cache; compute-bound) and decode (one new token per row per
step, reading the cache; bound by weights and memory traffic), each at batch 1 and 8."""

from __future__ import annotations

import inspect
import time
from typing import Any

import torch

BATCH_SIZES = (1, 8)


@torch.no_grad()
def generation_speed(
    model: Any,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    prompt_tokens: int = 128,
    new_tokens: int = 32,
    repeats: int = 2,
    seed: int = 0,
) -> dict[str, float]:
    """Tokens per second, the best of `repeats`: `prefill_tokens_per_second_batchB` (prompt
    tokens through the prefill pass) and `decode_tokens_per_second_batchB` (new tokens, greedy,
    with the KV cache). Prompts are random token ids: the cost does not depend on the text.
    Only the last position's logits are computed in the prefill, as `generate` does."""
    model.eval()
    limit = getattr(model.config, "max_position_embeddings", None) or prompt_tokens + new_tokens
    prompt_tokens = max(1, min(prompt_tokens, limit - new_tokens))
    parameters = inspect.signature(model.forward).parameters
    last_only = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}
    # transformers 5.25 renamed `past_key_values` to `cache` (in and out); both are read
    cache_key = "cache" if "cache" in parameters else "past_key_values"
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    speeds: dict[str, float] = {}
    for batch in batch_sizes:
        ids = torch.randint(0, model.config.vocab_size, (batch, prompt_tokens), generator=generator)
        ids = ids.to(device)
        model(input_ids=ids[:, :8], use_cache=True, **last_only)  # warm-up: first-call costs
        prefill = decode = float("inf")
        for _ in range(repeats):
            start = _clock(device)
            output = model(input_ids=ids, use_cache=True, **last_only)
            prefill = min(prefill, _clock(device) - start)
            past, token = output[cache_key], output.logits[:, -1:].argmax(-1)
            start = _clock(device)
            for _ in range(new_tokens):
                output = model(input_ids=token, use_cache=True, **{cache_key: past})
                past, token = output[cache_key], output.logits[:, -1:].argmax(-1)
            decode = min(decode, _clock(device) - start)
        speeds[f"prefill_tokens_per_second_batch{batch}"] = batch * prompt_tokens / prefill
        speeds[f"decode_tokens_per_second_batch{batch}"] = batch * new_tokens / decode
    return speeds


def _clock(device: torch.device) -> float:
    """Seconds, once the device's queued work is done (CUDA runs kernels asynchronously: without
    waiting, a GPU would be timed on launching them)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
