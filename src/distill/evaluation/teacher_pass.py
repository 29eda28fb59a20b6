"""The teacher's pass over held-out rows (response perplexity, and its next-token choices that a
student's token agreement is scored against), computed once and kept on disk.

Every causal-LM run scores its teacher on the same held-out rows; without this each run spent
two teacher passes on them (one for the teacher's perplexity, one for the student's agreement).
An entry is one `.npz` file keyed by the teacher (class, config, weights) and the token ids of
the rows, written to a staging file and renamed into place under a lock; one whose arrays do not
agree with each other is recomputed, never used.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from distill.data.instructions import EncodedInstructions
from distill.evaluation.lm_scores import ResponsePass, response_pass
from distill.models.fingerprint import model_fingerprint
from distill.runtime.locks import entry_lock

FORMAT_VERSION = 1


def entry_key(teacher: torch.nn.Module, encoded: EncodedInstructions) -> str:
    digest = hashlib.sha256(f"lm-eval-v{FORMAT_VERSION}".encode())
    digest.update(model_fingerprint(teacher).encode())
    encoded.update_digest(digest)
    return f"lm-eval-{digest.hexdigest()[:24]}"


def teacher_pass(
    directory: Path,
    teacher: torch.nn.Module,
    encoded: EncodedInstructions,
    pad_token_id: int,
    batch_size: int = 8,
) -> tuple[ResponsePass, bool]:
    """The teacher's pass over `encoded`, and whether it came from the cache."""
    key = entry_key(teacher, encoded)
    path = directory / f"{key}.npz"
    found = _read(path)
    if found is not None:
        return found, True
    directory.mkdir(parents=True, exist_ok=True)
    with entry_lock(directory, key):
        found = _read(path)
        if found is not None:
            return found, True
        computed = response_pass(teacher, encoded, pad_token_id, batch_size)
        staging = path.with_name(f".{key}.{os.getpid()}.npz")
        np.savez(
            staging,
            choices=computed.choices.numpy().astype(np.int64),
            nll=np.float64(computed.nll),
            tokens=np.int64(computed.tokens),
        )
        os.replace(staging, path)
    return computed, False


def _read(path: Path) -> ResponsePass | None:
    try:
        with np.load(path, allow_pickle=False) as stored:
            choices, nll, tokens = stored["choices"], float(stored["nll"]), int(stored["tokens"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if choices.shape != (tokens,) or not np.isfinite(nll):
        return None
    return ResponsePass(nll, tokens, torch.from_numpy(choices))
