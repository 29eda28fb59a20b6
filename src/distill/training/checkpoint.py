"""Checkpoints of training phases: written atomically, verified when read, the last K kept.

A run directory (OUT.partial/) holds checkpoints/<phase>/step-000120/ for each training phase
(teacher fine-tuning, each distillation stage, each generation); the trainer asks `phase(name)`
for its own. Each checkpoint is one torch.save file and a meta.json with its SHA-256, written
into a temporary directory, fsynced and renamed into place, so a crash or a full disk leaves the
previous checkpoint as it was and a damaged one is detected and skipped, never loaded.
Not accelerate's save_state: it writes in place, with no checksum to detect a torn file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from distill.errors import DistillError
from distill.runtime.progress import console

CHECKPOINTS = "checkpoints"
STATE, META, RECIPE = "state.pt", "meta.json", "recipe.json"


@dataclass
class Checkpointing:
    """The checkpoints of one run: where they go and how often (recipe `train.*`)."""

    root: Path  # OUT.partial/checkpoints
    every: int | None
    keep: int
    recipe: dict[str, Any] = field(default_factory=dict)  # written beside the first checkpoint
    _names: set[str] = field(default_factory=set)

    def phase(self, description: str) -> Phase:
        """This run's next phase named `description`; a second phase with the same name gets a
        suffix, so resuming maps phases to directories in the same order."""
        slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in description) or "phase"
        name, n = slug, 1
        while name in self._names:
            n += 1
            name = f"{slug}-{n}"
        self._names.add(name)
        return Phase(self.root / name, self.every, self.keep, self.recipe)


_active: ContextVar[Checkpointing | None] = ContextVar("checkpointing", default=None)


@contextmanager
def checkpointing(
    root: Path, every: int | None, keep: int, recipe: dict[str, Any]
) -> Iterator[Checkpointing]:
    """Training phases inside this block checkpoint under `root`; outside it (tests, benchmarks,
    library use without a run directory) they do not. `recipe` is saved with them, so that a
    resume with a changed recipe can say what changed."""
    token = _active.set(Checkpointing(root, every, keep, recipe))
    try:
        yield _active.get()  # type: ignore[misc]
    finally:
        _active.reset(token)


def phase(description: str) -> Phase | None:
    active = _active.get()
    return active.phase(description) if active is not None else None


def has_checkpoints(root: Path) -> bool:
    return root.is_dir() and any(root.glob(f"*/*/{META}"))


def saved_recipe(root: Path) -> dict[str, Any] | None:
    path = root / RECIPE
    return json.loads(path.read_text()) if path.is_file() else None


class Phase:
    """The checkpoints of one training phase: step-N/ (resumable), best/ and final/."""

    def __init__(
        self, directory: Path, every: int | None, keep: int, recipe: dict[str, Any] | None = None
    ) -> None:
        self.directory, self.every, self.keep = directory, every, keep
        self.recipe = recipe or {}

    @property
    def tensorboard_dir(self) -> Path:
        """OUT.partial/tb/<phase>/: kept when the run finishes (checkpoints/ is not)."""
        return self.directory.parent.parent / "tb" / self.directory.name

    def steps(self) -> list[int]:
        found = [p.name.removeprefix("step-") for p in self.directory.glob("step-*")]
        return sorted(int(s) for s in found if s.isdigit())

    def save(self, step: int, state: dict[str, Any]) -> None:
        """Write step-N/ and drop all but the newest `keep` step checkpoints."""
        self._record_recipe()
        write_atomic(self.directory / f"step-{step:06d}", state)
        for old in self.steps()[: -self.keep]:
            shutil.rmtree(self.directory / f"step-{old:06d}", ignore_errors=True)

    def latest(self) -> dict[str, Any] | None:
        """The newest step checkpoint that verifies; a damaged one is reported and skipped."""
        for step in reversed(self.steps()):
            state = read_verified(self.directory / f"step-{step:06d}")
            if state is not None:
                return state
        return None

    def last_good_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def save_named(self, name: str, state: dict[str, Any]) -> None:
        self._record_recipe()
        write_atomic(self.directory / name, state)

    def _record_recipe(self) -> None:
        path = self.directory.parent / RECIPE
        if self.recipe and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(self.recipe, indent=1))
            os.replace(temporary, path)

    def load_named(self, name: str) -> dict[str, Any] | None:
        """name/, or name.old/ when a crash fell between the two renames that replace it."""
        for candidate in (name, f"{name}.old"):
            if (self.directory / candidate).is_dir():
                return read_verified(self.directory / candidate)
        return None

    def finish(self, state: dict[str, Any]) -> None:
        """Mark the phase done (final/: its models and history) and drop its step checkpoints,
        which a finished phase no longer needs."""
        self.save_named("final", state)
        for step in self.steps():
            shutil.rmtree(self.directory / f"step-{step:06d}", ignore_errors=True)
        shutil.rmtree(self.directory / "best", ignore_errors=True)


def state_bytes(state: Any) -> int:
    """Bytes of the tensors in a (nested) state: the size a checkpoint of it will take."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(state_bytes(v) for v in state.values())
    if isinstance(state, list | tuple):
        return sum(state_bytes(v) for v in state)
    return 0


def check_free_space(directory: Path, needed: int, what: str) -> None:
    """Refuse to start (or write) when the disk cannot hold `needed` bytes more."""
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise DistillError(
            f"checkpoint: {what} needs about {needed / 1e6:,.0f} MB but {directory} has "
            f"{free / 1e6:,.0f} MB free; free space, write the run elsewhere (--out), or "
            "lower train.keep_checkpoints"
        )


def write_atomic(target: Path, state: dict[str, Any]) -> None:
    """Write `state` as target/ (state.pt + meta.json) so that target/ is either the old
    checkpoint or the complete new one, whatever happens during the write."""
    check_free_space(target.parent, int(state_bytes(state) * 1.05) + (1 << 20), "a checkpoint")
    temporary = target.with_name(f"{target.name}.tmp{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        temporary.mkdir(parents=True)
        with open(temporary / STATE, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        meta = {"sha256": _sha256(temporary / STATE), "bytes": (temporary / STATE).stat().st_size}
        with open(temporary / META, "w") as file:
            json.dump(meta, file)
            file.flush()
            os.fsync(file.fileno())
        _fsync_directory(temporary)
        previous = target.with_name(f"{target.name}.old")
        if target.exists():  # a named checkpoint (best/, final/) being replaced
            shutil.rmtree(previous, ignore_errors=True)
            os.replace(target, previous)
        os.replace(temporary, target)
        _fsync_directory(target.parent)
        shutil.rmtree(previous, ignore_errors=True)
    except OSError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        raise DistillError(
            f"checkpoint: writing {target} failed ({error.strerror or error}); the previous "
            "checkpoint is intact; free space or fix the permissions and run the same command "
            "again to resume"
        ) from None


def read_verified(directory: Path) -> dict[str, Any] | None:
    """The checkpoint's state if its file matches its recorded SHA-256, else None (reported)."""
    try:
        meta = json.loads((directory / META).read_text())
        if _sha256(directory / STATE) != meta["sha256"]:
            raise ValueError("its SHA-256 does not match meta.json")
        return torch.load(directory / STATE, weights_only=True)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        console.print(f"[yellow]checkpoint[/]: {directory} is damaged ({error}); skipping it")
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_directory(directory: Path) -> None:
    """Make a rename inside `directory` durable (POSIX; a no-op where directories cannot be
    opened)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
