"""Teacher outputs computed once and kept on disk, so logits-only recipes never load the teacher.

Files live under `CACHE_DIR/<fingerprint>/`: `logits.npy` (float16, memory-mapped when read) and
`meta.json`. The fingerprint covers the teacher's weights, the token ids (so tokenizer, data files
and max length) and the task's labels: any change means a different entry, never a stale hit.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel

from distill.batching import Encoded, iterate, model_inputs, to_device
from distill.progress import progress_bar
from distill.tasks import Task

FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    return Path(os.environ.get("DISTILL_CACHE", Path.home() / ".cache" / "distill"))


def fingerprint(teacher: PreTrainedModel, encoded: Encoded, task: Task) -> str:
    """sha256 of teacher weights, token ids and task labels (hex, 24 characters)."""
    digest = hashlib.sha256(f"v{FORMAT_VERSION}|{task.name}|{task.labels}".encode())
    for name, tensor in sorted(teacher.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    lengths = np.array([len(ids) for ids in encoded.input_ids], dtype=np.int64)
    digest.update(lengths.tobytes())
    digest.update(
        np.fromiter(
            (t for ids in encoded.input_ids for t in ids), dtype=np.int64, count=int(lengths.sum())
        ).tobytes()
    )
    if encoded.token_type_ids is not None:
        digest.update(
            np.fromiter(
                (t for ids in encoded.token_type_ids for t in ids),
                dtype=np.int64,
                count=int(lengths.sum()),
            ).tobytes()
        )
    return digest.hexdigest()[:24]


def load(directory: Path, key: str, examples: int) -> np.ndarray | None:
    """The cached logits `[examples, labels]` (memory-mapped), or None if absent or damaged."""
    entry = directory / key
    try:
        meta = json.loads((entry / "meta.json").read_text())
        logits = np.load(entry / "logits.npy", mmap_mode="r")
    except (OSError, ValueError):
        return None
    if (
        meta.get("fingerprint") != key
        or list(logits.shape) != meta.get("shape")
        or logits.shape[0] != examples
    ):
        return None
    return logits


def build(
    directory: Path,
    key: str,
    teacher: PreTrainedModel,
    encoded: Encoded,
    batch_size: int,
    pad_token_id: int,
) -> np.ndarray:
    """Run the teacher once over `encoded` and store its logits atomically (temp dir, rename)."""
    logits = np.zeros((len(encoded), teacher.config.num_labels), dtype=np.float16)
    teacher.eval()
    device = next(teacher.parameters()).device
    with torch.no_grad(), progress_bar("caching teacher", len(encoded)) as advance:
        for batch in iterate(encoded, batch_size, pad_token_id):
            output = teacher(**to_device(model_inputs(batch), device))
            logits[batch["index"].numpy()] = output.logits.float().cpu().numpy()
            advance(len(batch["index"]))
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=directory))
    np.save(staging / "logits.npy", logits)
    (staging / "meta.json").write_text(
        json.dumps(
            {
                "fingerprint": key,
                "shape": list(logits.shape),
                "dtype": "float16",
                "format_version": FORMAT_VERSION,
            }
        )
    )
    shutil.rmtree(directory / key, ignore_errors=True)  # a damaged entry is replaced
    os.replace(staging, directory / key)
    return np.load(directory / key / "logits.npy", mmap_mode="r")


def load_or_build(
    directory: Path,
    teacher: PreTrainedModel,
    encoded: Encoded,
    task: Task,
    batch_size: int,
    pad_token_id: int,
) -> tuple[np.ndarray, bool]:
    """Returns (logits, hit): `hit` is True when the cache already held this teacher and data."""
    key = fingerprint(teacher, encoded, task)
    cached = load(directory, key, len(encoded))
    if cached is not None:
        return cached, True
    return build(directory, key, teacher, encoded, batch_size, pad_token_id), False
