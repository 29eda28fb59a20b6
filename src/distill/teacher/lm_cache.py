"""A causal-LM teacher's next-token distributions on the training rows' response tokens,
computed once and kept on disk as the top k log-probabilities per token, so a student trains
without running its teacher (the offline teacher logits TRL, torchtune and DistillKit users ask
for).

Per response position (t with a response token at t + 1): the k largest log-probabilities of
the teacher's softened distribution `log_softmax(logits / T)` as float16, and their token ids
(uint16 when the vocabulary fits, else int32), flat over all positions with per-row offsets.
The rest of the mass is 1 - sum(exp(values)); objectives compare on those k tokens plus one
bucket for the rest (objectives/token_level.py). An entry is keyed by the teacher, the token
ids and response starts, k and T, written through a staging folder renamed into place under a
lock, with each file's sha256 (a damaged entry is rebuilt, never read).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from distill.data.batching import to_device
from distill.data.instructions import EncodedInstructions, InstructionBatches
from distill.models.capture import logits_at
from distill.models.fingerprint import model_fingerprint
from distill.models.outputs import TeacherOutput, TokenTopK
from distill.objectives.token_level import response_positions
from distill.runtime.locks import entry_lock
from distill.runtime.progress import progress_bar
from distill.teacher.cache import sha256_file, staged_entry, verified_arrays

FORMAT_VERSION = 1
FILES = ("values", "indices", "offsets")


def entry_key(
    teacher: PreTrainedModel, tokenizer: Any, encoded: EncodedInstructions, k: int, t: float
) -> str:
    digest = hashlib.sha256(f"lm-top-k-v{FORMAT_VERSION}|{k}|{t!r}".encode())
    digest.update(model_fingerprint(teacher, tokenizer).encode())
    encoded.update_digest(digest)
    return f"lm-top{k}-{digest.hexdigest()[:24]}"


def bytes_per_token(k: int, vocabulary: int) -> int:
    """Disk bytes per response token: k float16 values and k token ids."""
    return k * (2 + (2 if vocabulary <= np.iinfo(np.uint16).max + 1 else 4))


class CachedLMTeacher:
    """A teacher source reading the cached top-k of a batch's rows (`batch["index"]`); nothing
    is run. Positions other than response positions hold zeros (objectives never read them)."""

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        key: str,
        vocabulary: int,
        build_seconds: float | None = None,
    ) -> None:
        self.values, self.indices, self.offsets = (arrays[name] for name in FILES)
        self.key, self.vocabulary = key, vocabulary
        # the one teacher pass that built the entry, so a run reusing it can show what the
        # cached rows' minutes leave out (None: an entry built before this was recorded)
        self.build_seconds = build_seconds

    def __call__(self, batch: dict[str, torch.Tensor]) -> TeacherOutput:
        positions = response_positions(batch, "teacher cache")
        rows, k = batch["index"].tolist(), self.values.shape[1]
        shape = (*positions.shape, k)
        log_probs = torch.zeros(shape, dtype=torch.float32)
        indices = torch.zeros(shape, dtype=torch.long)
        for row, i in enumerate(rows):
            start, end = int(self.offsets[i]), int(self.offsets[i + 1])
            where = positions[row].nonzero().flatten()
            assert len(where) == end - start, "cached positions do not match the batch"
            log_probs[row, where] = torch.from_numpy(self.values[start:end].astype(np.float32))
            indices[row, where] = torch.from_numpy(self.indices[start:end].astype(np.int64))
        device = batch["attention_mask"].device
        return TeacherOutput(
            None,  # type: ignore[arg-type]
            batch["attention_mask"],
            token_top_k=TokenTopK(log_probs.to(device), indices.to(device), self.vocabulary),
        )


def load_or_build(
    directory: Path,
    teacher: PreTrainedModel,
    tokenizer: Any,
    encoded: EncodedInstructions,
    pad_token_id: int,
    k: int,
    temperature: float,
    batch_size: int,
) -> tuple[CachedLMTeacher, bool]:
    """The entry's teacher source and whether it was already there (k is capped at the
    vocabulary: then the cache holds every token's probability)."""
    k = min(k, teacher.config.vocab_size)
    key = entry_key(teacher, tokenizer, encoded, k, temperature)
    found = _load(directory / key, key)
    hit = found is not None
    if found is None:
        directory.mkdir(parents=True, exist_ok=True)
        with entry_lock(directory, key):
            found = _load(directory / key, key)
            hit = found is not None
            if found is None:
                _build(directory, key, teacher, encoded, pad_token_id, k, temperature, batch_size)
                found = _load(directory / key, key)
                assert found is not None
    meta, arrays = found
    seconds = meta.get("build_seconds")
    return CachedLMTeacher(arrays, key, teacher.config.vocab_size, seconds), hit


def _load(entry: Path, key: str) -> tuple[dict, dict[str, np.ndarray]] | None:
    found = verified_arrays(entry, key)
    if found is None or set(found[1]) != set(FILES):
        return None
    return found


@torch.no_grad()
def _build(
    directory: Path,
    key: str,
    teacher: PreTrainedModel,
    encoded: EncodedInstructions,
    pad_token_id: int,
    k: int,
    temperature: float,
    batch_size: int,
) -> None:
    """One teacher pass over the rows, top-k of each response position written to memmaps."""
    started = time.perf_counter()
    with staged_entry(directory, key) as staging:
        counts = [len(ids) - max(start, 1) for ids, start in _rows(encoded)]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        vocabulary = teacher.config.vocab_size
        index_type = np.uint16 if vocabulary <= np.iinfo(np.uint16).max + 1 else np.int32
        total = int(offsets[-1])
        values = np.lib.format.open_memmap(staging / "values.npy", "w+", np.float16, (total, k))
        indices = np.lib.format.open_memmap(staging / "indices.npy", "w+", index_type, (total, k))
        np.save(staging / "offsets.npy", offsets)
        batches = InstructionBatches(encoded, pad_token_id)
        device = next(teacher.parameters()).device
        teacher.eval()
        with progress_bar("caching teacher top-k", len(encoded)) as advance:
            for rows, batch in batches.in_order(batch_size):
                counts = response_positions(batch, "teacher cache").sum(dim=1).tolist()
                # each row's response positions, the head run there only
                logits = logits_at(teacher, to_device(batch, device)).split(counts)
                for row, i in enumerate(rows):
                    log_probs = torch.log_softmax(logits[row].float() / temperature, -1)
                    top = log_probs.topk(k, dim=-1)
                    start, end = offsets[i], offsets[i + 1]
                    values[start:end] = top.values.cpu().numpy()
                    indices[start:end] = top.indices.cpu().numpy()
                advance(len(rows))
        values.flush()
        indices.flush()
        files = {name: {"sha256": sha256_file(staging / f"{name}.npy")} for name in FILES}
        meta = {
            "key": key,
            "format_version": FORMAT_VERSION,
            "k": k,
            "files": files,
            "build_seconds": round(time.perf_counter() - started, 1),
        }
        (staging / "meta.json").write_text(json.dumps(meta, indent=1))


def _rows(encoded: EncodedInstructions):  # noqa: ANN202
    return zip(encoded.input_ids, encoded.loss_starts(), strict=True)
