"""The teacher's hidden states over a corpus's blocks, computed once and memory-mapped, so that a
general run of several epochs with hidden-state objectives runs its teacher once, not per epoch.

Blocks have one length, so an entry is one `[blocks, block_size, hidden]` float16 array per
layer (no offsets). It is written like a task cache entry (teacher/cache.py): a staging folder
renamed into place under a lock, each file's sha256 in meta.json, a damaged entry rebuilt. The
key covers the token file (corpus content, reading settings, tokenizer), the teacher and the
layers stored.

When it is used (`plan_corpus_states`): every objective that reads the teacher reads only
hidden states of layers it can name (relations, attention maps and masked-LM distributions are
O(seq^2) or O(vocabulary) per token), the batches are not masked (masks are drawn per batch, so
the teacher must see each batch's own input), the run visits every block more than once
(building the entry is itself one teacher pass over every block), and the entry fits
`cache.states_budget_gb`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from distill.data.corpus import CorpusBlocks
from distill.models.fingerprint import model_fingerprint
from distill.models.outputs import TeacherOutput
from distill.objectives import Access, WeightedObjective, needs_of
from distill.runtime.locks import entry_lock
from distill.runtime.progress import progress_bar
from distill.teacher.cache import sha256_file, staged_entry, verified_arrays

FORMAT_VERSION = 1


@dataclass
class CorpusStatesPlan:
    layers: tuple[int, ...]  # empty: the teacher runs live
    note: str  # why, for the plan line


def plan_corpus_states(
    objectives: list[WeightedObjective],
    teacher_config: Any,
    blocks: CorpusBlocks,
    masked: bool,
    visits: float,
    budget_gb: float,
    enabled: bool = True,
) -> CorpusStatesPlan:
    """Which teacher layers to cache for this run, or why none (`visits`: how many times the
    schedule sees each block, epochs or a fraction of one)."""
    readers = [o for o in objectives if o.objective.access > Access.NONE]
    if not readers:
        return CorpusStatesPlan((), "the teacher is not read")
    if not enabled:
        return CorpusStatesPlan((), "cache.enabled is false")
    for item in readers:
        if not hasattr(item.objective, "cacheable_states") or needs_of(item.objective) - {
            "hidden_states"
        }:
            return CorpusStatesPlan(
                (), f"'{item.name}' needs more than hidden states, so no states cache"
            )
    if masked:
        return CorpusStatesPlan(
            (), "the batches are masked anew each step, so the teacher sees each one live"
        )
    layers = tuple(
        sorted(
            frozenset().union(
                *(o.objective.cacheable_states(teacher_config.num_hidden_layers) for o in readers)
            )
        )
    )
    size = len(blocks) * blocks.block_size * teacher_config.hidden_size * 2 * len(layers) / 1e9
    if visits <= 1:
        return CorpusStatesPlan(
            (),
            f"each block is seen {visits:.2g} times: caching its states (a teacher pass over "
            "every block) would cost more than it saves; it pays from the second epoch",
        )
    if size > budget_gb:
        return CorpusStatesPlan(
            (),
            f"caching hidden states {list(layers)} would take {size:.2f} GB > "
            f"cache.states_budget_gb {budget_gb:g}",
        )
    return CorpusStatesPlan(
        layers, f"hidden states {list(layers)} cached: {size:.2f} GB <= {budget_gb:g} GB budget"
    )


def entry_key(teacher: PreTrainedModel, tokenizer: Any, blocks: CorpusBlocks, layers) -> str:
    digest = hashlib.sha256(
        f"corpus-states-v{FORMAT_VERSION}|{blocks.key}|{blocks.block_size}|{len(blocks)}".encode()
    )
    digest.update(model_fingerprint(teacher, tokenizer).encode())
    return f"corpus-states-{digest.hexdigest()[:24]}-{'_'.join(map(str, layers))}"


class CorpusStatesTeacher:
    """A teacher source that reads the cached states of a batch's blocks (`batch["index"]`);
    nothing is run. Only the cached layers are tensors; the teacher has no logits here."""

    def __init__(self, states: dict[int, np.ndarray], num_layers: int, key: str) -> None:
        self.states, self.num_layers, self.key = states, num_layers, key

    def __call__(self, batch: dict[str, torch.Tensor]) -> TeacherOutput:
        mask = batch["attention_mask"]
        index = batch["index"].cpu().numpy()
        rows = np.sort(index)  # memmap fancy indexing wants sorted rows
        order = np.searchsorted(rows, index)
        layers: list[torch.Tensor | None] = [None] * (self.num_layers + 1)
        for layer, array in self.states.items():
            values = np.asarray(array[rows], dtype=np.float32)[order]
            layers[layer] = torch.from_numpy(values).to(mask.device)
        return TeacherOutput(None, mask, hidden_states=tuple(layers))  # type: ignore[arg-type]


def load_or_build(
    directory: Path,
    teacher: PreTrainedModel,
    tokenizer: Any,
    blocks: CorpusBlocks,
    layers: tuple[int, ...],
    batch_size: int,
) -> tuple[CorpusStatesTeacher, bool]:
    """The entry's teacher source and whether it was already there (or built meanwhile by
    another process)."""
    key = entry_key(teacher, tokenizer, blocks, layers)
    states = _load(directory / key, key, len(blocks))
    if states is not None:
        return CorpusStatesTeacher(states, teacher.config.num_hidden_layers, key), True
    directory.mkdir(parents=True, exist_ok=True)
    with entry_lock(directory, key):
        states = _load(directory / key, key, len(blocks))
        hit = states is not None
        if states is None:
            _build(directory, key, teacher, blocks, layers, batch_size)
            states = _load(directory / key, key, len(blocks))
            assert states is not None
    return CorpusStatesTeacher(states, teacher.config.num_hidden_layers, key), hit


def _load(entry: Path, key: str, blocks: int) -> dict[int, np.ndarray] | None:
    found = verified_arrays(entry, key)
    if found is None or found[0].get("blocks") != blocks:
        return None
    return {int(name.removeprefix("states_")): array for name, array in found[1].items()}


@torch.no_grad()
def _build(
    directory: Path,
    key: str,
    teacher: PreTrainedModel,
    blocks: CorpusBlocks,
    layers: tuple[int, ...],
    batch_size: int,
) -> None:
    """One teacher pass over every block, written straight into memory-mapped files."""
    with staged_entry(directory, key) as staging:
        shape = (len(blocks), blocks.block_size, teacher.config.hidden_size)
        arrays = {
            layer: np.lib.format.open_memmap(
                staging / f"states_{layer}.npy", "w+", np.float16, shape
            )
            for layer in layers
        }
        teacher.eval()
        device = next(teacher.parameters()).device
        with progress_bar("caching teacher states", len(blocks)) as advance:
            for start in range(0, len(blocks), batch_size):
                stop = min(start + batch_size, len(blocks))
                ids = torch.tensor([blocks[i] for i in range(start, stop)], device=device)
                output = teacher(
                    input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True
                )
                for layer, array in arrays.items():
                    array[start:stop] = output.hidden_states[layer].to(torch.float16).cpu().numpy()
                advance(stop - start)
        files = {}
        for layer, array in arrays.items():
            array.flush()
            path = staging / f"states_{layer}.npy"
            files[f"states_{layer}"] = {"shape": list(shape), "sha256": sha256_file(path)}
        meta = {"key": key, "blocks": len(blocks), "format_version": FORMAT_VERSION}
        (staging / "meta.json").write_text(json.dumps({**meta, "files": files}, indent=1))
