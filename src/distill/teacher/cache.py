"""Teacher outputs computed once and kept on disk, so a student trains without its teacher.

An entry lives under `CACHE_DIR/<key>/`: memory-mapped `.npy` files and `meta.json`, which
records each file's shape, dtype and sha256. The key covers the teacher's class, config and
weights (and its tokenizer when given), the token ids (so tokenizer, data files and max length),
the task's labels and what is stored: any change is a different entry, never a stale hit. A file
that is truncated or altered fails its checksum and the entry is rebuilt, never used. Entries are
written to a staging directory and renamed into place, under a lock file per entry: of several
processes that need one entry, one builds it and the others wait, then read it.

What an entry holds:
- logits, float16 `[examples, classes]`; or, for many classes (a vocabulary), the top-k logits
  with their class indices and the log-sum-exp of all logits (the rest of the mass follows);
- optionally the hidden states of some layers (`hidden_states` indices), float16, each example
  at its real length, concatenated: `[total tokens, hidden]` per layer plus example offsets.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from distill.data.batching import Encoded, iterate, model_inputs, to_device
from distill.data.tasks import Task
from distill.models.fingerprint import model_fingerprint
from distill.models.outputs import TeacherOutput, TopKLogits
from distill.runtime.locks import entry_lock
from distill.runtime.progress import progress_bar

FORMAT_VERSION = 3  # 3: the key covers the teacher's config and tokenizer


@dataclass
class TopK:
    """The k largest teacher logits per example, their classes, and the log-sum-exp of all."""

    values: np.ndarray  # [examples, k] float16
    indices: np.ndarray  # [examples, k] int32
    logsumexp: np.ndarray  # [examples] float32
    classes: int


@dataclass
class CachedOutputs:
    logits: np.ndarray | None = None  # [examples, classes] float16
    top_k: TopK | None = None
    offsets: np.ndarray | None = None  # [examples + 1] int64: token offsets into `states`
    states: dict[int, np.ndarray] = field(default_factory=dict)  # layer -> [tokens, hidden]
    key: str = ""  # the entry's name: fingerprint, top-k and states layers


def default_cache_dir() -> Path:
    return Path(os.environ.get("DISTILL_CACHE", Path.home() / ".cache" / "distill"))


def cache_root(directory: str | None) -> Path:
    """Where a recipe's caches live: its `cache.dir`, else $DISTILL_CACHE or ~/.cache/distill."""
    return Path(directory) if directory else default_cache_dir()


def fingerprint(
    teacher: PreTrainedModel, encoded: Encoded, task: Task, tokenizer: Any = None
) -> str:
    """sha256 of the teacher (class, config, weights and, when given, tokenizer:
    models/fingerprint.py), the token ids and the task's labels (hex, 24 characters)."""
    digest = hashlib.sha256(f"v{FORMAT_VERSION}|{task.name}|{task.labels}".encode())
    digest.update(model_fingerprint(teacher, tokenizer).encode())
    lengths = np.array([len(ids) for ids in encoded.input_ids], dtype=np.int64)
    digest.update(lengths.tobytes())
    for column in (encoded.input_ids, encoded.token_type_ids):
        if column is not None:
            flat = (t for ids in column for t in ids)
            digest.update(np.fromiter(flat, dtype=np.int64, count=int(lengths.sum())).tobytes())
    return digest.hexdigest()[:24]


def entry_key(base: str, top_k: int | None, layers: tuple[int, ...]) -> str:
    """The entry name: the fingerprint plus what the entry stores."""
    key = base + (f"-top{top_k}" if top_k else "")
    return key + (f"-states{'_'.join(map(str, layers))}" if layers else "")


def states_bytes(encoded: Encoded, hidden_size: int, layers: tuple[int, ...]) -> int:
    """Disk size of the hidden states of `layers` at every example's real length (float16)."""
    tokens = sum(len(ids) for ids in encoded.input_ids)
    return tokens * hidden_size * 2 * len(layers)


def load(directory: Path, key: str, examples: int) -> CachedOutputs | None:
    """The entry's arrays (memory-mapped), or None when it is absent, incomplete or damaged."""
    found = verified_arrays(directory / key, key, key_field="fingerprint")
    if found is None or found[0].get("examples") != examples:
        return None
    meta, arrays = found
    return _outputs(arrays, meta)


def build(
    directory: Path,
    key: str,
    teacher: PreTrainedModel,
    encoded: Encoded,
    batch_size: int,
    pad_token_id: int,
    top_k: int | None = None,
    layers: tuple[int, ...] = (),
) -> CachedOutputs:
    """Run the teacher once over `encoded` and store what was asked, atomically, replacing any
    entry of that name; waits while another process builds the same entry."""
    directory.mkdir(parents=True, exist_ok=True)
    with entry_lock(directory, key):
        return _build(directory, key, teacher, encoded, batch_size, pad_token_id, top_k, layers)


def load_or_build(
    directory: Path,
    teacher: PreTrainedModel,
    encoded: Encoded,
    task: Task,
    batch_size: int,
    pad_token_id: int,
    top_k: int | None = None,
    layers: tuple[int, ...] = (),
    tokenizer: Any = None,
) -> tuple[CachedOutputs, bool]:
    """Returns (outputs, hit): `hit` is True when the cache already held this entry, or another
    process built it while this one waited.

    `top_k`: store the k largest logits (when the teacher has more classes than k).
    `layers`: also store these hidden states (`hidden_states` indices, 0 = embeddings).
    `tokenizer`: the tokenizer that produced `encoded`, made part of the key.
    """
    k = top_k if top_k is not None and teacher.config.num_labels > top_k else None
    key = entry_key(fingerprint(teacher, encoded, task, tokenizer), k, tuple(sorted(layers)))
    cached = load(directory, key, len(encoded))  # a complete entry needs no lock to be read
    if cached is not None:
        return cached, True
    directory.mkdir(parents=True, exist_ok=True)
    with entry_lock(directory, key):
        # another process may have built the entry while this one waited for the lock
        cached = load(directory, key, len(encoded))
        if cached is not None:
            return cached, True
        built = _build(directory, key, teacher, encoded, batch_size, pad_token_id, k, layers)
    return built, False


class CachedTeacher:
    """A teacher source reading the cache by example index: logits (dense, or top-k with
    their dense form) and any cached hidden states, padded to the batch. Nothing is run."""

    def __init__(self, cached: CachedOutputs, num_layers: int = 0) -> None:
        self.cached = cached
        self.num_layers = num_layers  # the teacher's blocks: hidden_states has num_layers + 1
        self.key = cached.key  # which entry it reads (a resumed checkpoint must match it)

    def __call__(self, batch: dict[str, torch.Tensor]) -> TeacherOutput:
        mask = batch["attention_mask"]
        index = batch["index"].cpu().numpy()
        rows = np.sort(index)  # memmap fancy indexing wants sorted rows
        order = np.searchsorted(rows, index)

        def read(array: np.ndarray, dtype: type = np.float32) -> torch.Tensor:
            return torch.from_numpy(np.asarray(array[rows], dtype=dtype)[order]).to(mask.device)

        cached, top_k = self.cached, None
        if cached.top_k is not None:
            top_k = TopKLogits(
                read(cached.top_k.values),
                read(cached.top_k.indices, np.int64),
                read(cached.top_k.logsumexp),
                cached.top_k.classes,
            )
            logits = top_k.dense()
        else:
            assert cached.logits is not None
            logits = read(cached.logits)
        hidden_states = None
        if cached.states:
            layers: list[torch.Tensor | None] = [None] * (self.num_layers + 1)
            for layer, flat in cached.states.items():
                layers[layer] = self._padded(flat, index, mask)
            hidden_states = tuple(layers)
        return TeacherOutput(logits, mask, hidden_states=hidden_states, top_k=top_k)

    def _padded(self, flat: np.ndarray, index: np.ndarray, mask: torch.Tensor) -> torch.Tensor:
        """`[batch, seq, hidden]` from the examples' stored tokens, zeros at the padding."""
        assert self.cached.offsets is not None
        offsets = self.cached.offsets
        out = np.zeros((len(index), mask.shape[1], flat.shape[1]), dtype=np.float32)
        for row, i in enumerate(index):
            start, end = offsets[i], offsets[i + 1]
            out[row, : end - start] = flat[start:end]
        return torch.from_numpy(out).to(mask.device)


# -- writing ------------------------------------------------------------------------------------
def _build(
    directory: Path,
    key: str,
    teacher: PreTrainedModel,
    encoded: Encoded,
    batch_size: int,
    pad_token_id: int,
    top_k: int | None,
    layers: tuple[int, ...],
) -> CachedOutputs:
    """build() with the entry's lock held."""
    with staged_entry(directory, key) as staging:
        arrays = _write_arrays(staging, teacher, encoded, batch_size, pad_token_id, top_k, layers)
        meta = {
            "fingerprint": key,
            "examples": len(encoded),
            "classes": teacher.config.num_labels,
            "format_version": FORMAT_VERSION,
            "files": {
                name: {
                    "shape": list(array.shape),
                    "dtype": str(array.dtype),
                    "sha256": sha256_file(staging / f"{name}.npy"),
                }
                for name, array in arrays.items()
            },
        }
        (staging / "meta.json").write_text(json.dumps(meta, indent=1))
    loaded = load(directory, key, len(encoded))
    assert loaded is not None
    return loaded


@contextmanager
def staged_entry(directory: Path, key: str) -> Iterator[Path]:
    """A staging folder for the entry `key`, renamed into place when the block completes and
    removed when it fails (never a half-written entry). Call it with the entry's lock held:
    every build of an entry holds it, so a staging folder seen now belongs to a build that
    died (SIGKILL, power cut); it is never read, and removed here."""
    for stale in [*directory.glob(f".{key}.staging-*"), *directory.glob(f".{key}.replaced-*")]:
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.staging-", dir=directory))
    try:
        yield staging
        rename_into_place(staging, directory / key)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def rename_into_place(staging: Path, entry: Path) -> None:
    """Make `staging` the entry, replacing a damaged one without writing into its files.

    The old entry is renamed aside, the new one renamed in, and only then is the old one
    removed. Another process that has the old files memory-mapped keeps their inodes (an unlinked
    file lives on while it is mapped, and nothing truncates or rewrites it), so its arrays stay
    valid; one that looks between the two renames finds no entry, waits for this build's lock
    and reads the new one. Deleting the old files in place first (rmtree) would instead pull them
    from under a process midway through `load()`, which then finds half an entry.
    """
    if entry.exists():
        aside = entry.with_name(f".{entry.name}.replaced-{uuid.uuid4().hex[:8]}")
        os.replace(entry, aside)
        os.replace(staging, entry)
        shutil.rmtree(aside, ignore_errors=True)  # where it fails (Windows), the next build does
    else:
        os.replace(staging, entry)


def _write_arrays(
    staging: Path,
    teacher: PreTrainedModel,
    encoded: Encoded,
    batch_size: int,
    pad_token_id: int,
    top_k: int | None,
    layers: tuple[int, ...],
) -> dict[str, np.ndarray]:
    """One teacher pass writing straight into memory-mapped files (states can exceed RAM)."""
    examples, classes = len(encoded), teacher.config.num_labels
    lengths = np.array([len(ids) for ids in encoded.input_ids], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])

    def create(name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        return np.lib.format.open_memmap(staging / f"{name}.npy", "w+", dtype, shape)

    arrays: dict[str, np.ndarray] = {}
    if top_k:
        arrays["topk_values"] = create("topk_values", (examples, top_k), np.float16)
        arrays["topk_indices"] = create("topk_indices", (examples, top_k), np.int32)
        arrays["logsumexp"] = create("logsumexp", (examples,), np.float32)
    else:
        arrays["logits"] = create("logits", (examples, classes), np.float16)
    if layers:
        arrays["offsets"] = create("offsets", (examples + 1,), np.int64)
        arrays["offsets"][:] = offsets
        width = teacher.config.hidden_size
        for layer in layers:
            arrays[f"states_{layer}"] = create(
                f"states_{layer}", (int(offsets[-1]), width), np.float16
            )
    teacher.eval()
    device = next(teacher.parameters()).device
    with torch.no_grad(), progress_bar("caching teacher", examples) as advance:
        for batch in iterate(encoded, batch_size, pad_token_id):
            output = teacher(
                **to_device(model_inputs(batch), device), output_hidden_states=bool(layers)
            )
            rows = batch["index"].numpy()
            logits = output.logits.float()
            if top_k:
                values, indices = logits.topk(top_k, dim=-1)
                arrays["topk_values"][rows] = values.cpu().numpy()
                arrays["topk_indices"][rows] = indices.cpu().numpy()
                arrays["logsumexp"][rows] = torch.logsumexp(logits, dim=-1).cpu().numpy()
            else:
                arrays["logits"][rows] = logits.cpu().numpy()
            for layer in layers:
                states = output.hidden_states[layer].to(torch.float16).cpu().numpy()
                for row, i in enumerate(rows):
                    arrays[f"states_{layer}"][offsets[i] : offsets[i + 1]] = states[
                        row, : lengths[i]
                    ]
            advance(len(rows))
    for array in arrays.values():
        array.flush()
    return arrays


def _outputs(arrays: dict[str, np.ndarray], meta: dict) -> CachedOutputs:
    outputs = CachedOutputs(
        logits=arrays.get("logits"), offsets=arrays.get("offsets"), key=meta["fingerprint"]
    )
    if "topk_values" in arrays:
        outputs.top_k = TopK(
            arrays["topk_values"], arrays["topk_indices"], arrays["logsumexp"], meta["classes"]
        )
    outputs.states = {
        int(name.removeprefix("states_")): array
        for name, array in arrays.items()
        if name.startswith("states_")
    }
    return outputs


def verified_arrays(
    entry: Path, key: str, key_field: str = "key"
) -> tuple[dict, dict[str, np.ndarray]] | None:
    """An entry's meta.json and every array it lists (`files: {name: {sha256, shape?}}`),
    memory-mapped, when meta[key_field] is `key` and each file matches its recorded sha256
    (and shape, when recorded); else None (absent, incomplete or damaged: the caller rebuilds
    it). Every teacher cache reads its entries through it."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        if meta.get(key_field) != key:
            return None
        arrays = {}
        for name, spec in meta["files"].items():
            path = entry / f"{name}.npy"
            if sha256_file(path) != spec["sha256"]:
                return None
            arrays[name] = np.load(path, mmap_mode="r")
            if "shape" in spec and list(arrays[name].shape) != spec["shape"]:
                return None
        return meta, arrays
    except (OSError, ValueError, KeyError, TypeError):
        return None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()
