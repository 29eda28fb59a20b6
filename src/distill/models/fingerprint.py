"""What a model computes, as a hash: its weights, its config and its tokenizer.

The teacher cache names its entries with it, and a resumed run compares it to refuse a checkpoint
trained against another teacher (docs/objectives.md, "Teacher cache"; docs/long-runs.md).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch

# Config fields that do not change what the model computes, left out so that a model moved to
# another directory, re-saved, or read by another transformers version still hits the cache:
# where it was loaded from, the version that wrote it, the class that saved it (the class that
# runs is hashed itself), and switches that choose which outputs are returned, not their values.
# `dtype` is left out because the parameters' own dtypes are hashed (what actually runs: a config
# saying float32 beside bfloat16 weights computes in bfloat16).
IGNORED_CONFIG_FIELDS = frozenset(
    {
        "_name_or_path",
        "transformers_version",
        "architectures",
        "dtype",
        "torch_dtype",
        "output_hidden_states",
        "output_attentions",
        "return_dict",
        "use_cache",
    }
)


def model_fingerprint(model: torch.nn.Module, tokenizer: Any = None) -> str:
    """sha256 (hex) of a model's class, config, weights and, when given, tokenizer.

    Changing any weight by one bit, the activation, the depth, the dtype of the parameters, or
    the tokenizer's vocabulary or normalisation changes the result; moving the model's directory
    does not. About 0.1 s per 100 MB of weights on one CPU core (sha256 over their bytes).

    Args:
        model: a `PreTrainedModel` (or any module; a config is hashed when it has one).
        tokenizer: its tokenizer, or None to leave it out (the token ids it produced are then
            what a caller hashes).
    """
    digest = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    config = getattr(model, "config", None)
    if config is not None:
        digest.update(config_json(config).encode())
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        # name, dtype and shape: the same bytes read as another dtype or shape are another model
        digest.update(f"|{name}|{data.dtype}|{tuple(data.shape)}|".encode())
        digest.update(data.view(-1).view(torch.uint8).numpy())
    if tokenizer is not None:
        digest.update(b"|tokenizer|" + tokenizer_json(tokenizer).encode())
    return digest.hexdigest()


def config_json(config: Any) -> str:
    """The config's fields as canonical JSON, less IGNORED_CONFIG_FIELDS."""
    fields = {k: v for k, v in config.to_dict().items() if k not in IGNORED_CONFIG_FIELDS}
    return json.dumps(fields, sort_keys=True, default=str)


def tokenizer_id(tokenizer: Any) -> str:
    """A short key for what decides the tokenizer's ids (token files cached under cache.dir are
    keyed by it, besides their text)."""
    return hashlib.sha256(tokenizer_json(tokenizer).encode()).hexdigest()[:16]


def tokenizer_json(tokenizer: Any) -> str:
    """What decides a tokenizer's token ids, as canonical JSON: a fast tokenizer's backend (its
    vocabulary, normaliser, pre-tokeniser, model and post-processor), else its vocabulary and
    settings; plus its special tokens."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        # truncation and padding are set by each call (encode's max_length), not by the tokenizer
        state.pop("truncation", None)
        state.pop("padding", None)
    else:
        settings = getattr(tokenizer, "init_kwargs", {})
        state = {
            "vocab": sorted(tokenizer.get_vocab().items()),
            "settings": {k: v for k, v in settings.items() if k != "name_or_path"},
        }
        state["class"] = type(tokenizer).__name__  # a slow tokenizer's rules are in its code
    state["special_tokens"] = getattr(tokenizer, "special_tokens_map", {})
    return json.dumps(state, sort_keys=True, default=str)
