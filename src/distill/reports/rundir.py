"""The run directory contract: OUT.partial/ while running, renamed to OUT/ only when complete."""

from __future__ import annotations

import glob
import importlib.metadata
import json
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from distill.errors import DistillError
from distill.runtime import distributed
from distill.training.checkpoint import CHECKPOINTS, has_checkpoints
from distill.training.checkpoint import saved_recipe as checkpoint_recipe

DISTILL_JSON = "distill.json"
_log = logging.getLogger(__name__)


def check_output(output: Path, overwrite: bool) -> None:
    """Refuse to replace a finished run unless asked; checked before any work starts.

    Also finishes an --overwrite swap that a crash interrupted (see `run_directory`): an old
    run set aside while OUT/ is missing is put back, and one set aside after the new run was
    in place is removed."""
    asides = _asides(output)
    if distributed.is_main():  # every process decides alike below; one touches the disk
        _recover(output, asides)
    if (output.exists() or asides) and not overwrite:
        raise DistillError(
            f"output: {output} already exists; pass --overwrite to replace it "
            "or --out to choose another directory"
        )
    _check_writable(output.parent)


def _check_writable(directory: Path) -> None:
    """Write a probe file in the nearest existing ancestor: permissions, a read-only disk and
    a path through a file all fail here, before any work (os.access is blind to the last two,
    and to everything when running as root)."""
    existing = directory.absolute()
    while not existing.exists():
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is a file")
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise DistillError(
            f"output: cannot write in {directory} ({error.strerror or error}); "
            "choose --out elsewhere"
        ) from None


def partial_directory(output: Path) -> Path:
    return output.with_name(output.name + ".partial")


@contextmanager
def run_directory(output: Path, overwrite: bool) -> Iterator[Path]:
    """Yield OUT.partial/ to write into; on success it is renamed to OUT/ (with --overwrite,
    the old OUT/ is renamed aside first and removed last, so OUT/ always holds a complete run).

    On failure the partial directory is removed, so no half-written run is ever left behind,
    unless it holds checkpoints: then it stays, recognisably unfinished, for a resume (modes/run.py
    decides before this whether a partial directory is resumed or started afresh).
    """
    if not distributed.is_main():  # the other processes of a multi-process run write nothing
        with tempfile.TemporaryDirectory(prefix="distill-rank-") as scratch:
            yield Path(scratch)
        distributed.barrier()
        return
    partial = partial_directory(output)
    partial.mkdir(parents=True, exist_ok=True)
    try:
        yield partial
    except BaseException:
        if not has_checkpoints(partial / CHECKPOINTS):
            shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(partial / CHECKPOINTS, ignore_errors=True)  # a finished run needs none
    if output.exists() and overwrite:
        _swap_in(partial, output)
    else:
        os.replace(partial, output)
    distributed.barrier()  # the others finish when OUT/ is in place


def _aside_directory(output: Path) -> Path:
    # a name only distill writes: leftovers are removed without asking (a user's own
    # "OUT.old" must never match)
    return output.with_name(f"{output.name}.distill-old-{os.getpid()}")


def _asides(output: Path) -> list[Path]:
    """Old runs set aside by an --overwrite swap (OUT.distill-old-<pid>), newest first."""
    found = output.parent.glob(f"{glob.escape(output.name)}.distill-old-*")
    asides = [path for path in found if path.name.rpartition("-")[2].isdigit() and path.is_dir()]
    return sorted(asides, key=_mtime, reverse=True)


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


def _recover(output: Path, asides: list[Path]) -> None:
    if asides and not output.exists():  # crashed between the two renames: the old run is whole
        os.replace(asides.pop(0), output)
    for aside in asides:  # crashed while removing an old run that the new one had replaced
        shutil.rmtree(aside, ignore_errors=True)


def _swap_in(partial: Path, output: Path) -> None:
    """Put the finished run at OUT/ so that OUT/ always holds a complete run, old or new: the
    old one is renamed aside (same parent, so each rename is atomic), the new one renamed in,
    and only then is the old one removed. A failed rename puts the old one back; a crash
    leaves OUT.distill-old-<pid>/, which the next run's `check_output` restores or removes."""
    aside = _aside_directory(output)
    os.replace(output, aside)
    try:
        os.replace(partial, output)
    except BaseException:
        os.replace(aside, output)
        raise
    try:
        shutil.rmtree(aside)
    except OSError as error:  # the new run is in place: a leftover is no reason to fail it
        _log.warning(
            "could not remove the replaced run %s (%s); the next run removes it", aside, error
        )


def prepare_resume(
    output: Path, recipe: dict[str, Any], overwrite: bool, resume: bool, force: bool
) -> bool:
    """Decide whether OUT.partial/ is resumed (True) or started afresh; checked before any
    work. A partial run resumes when it has checkpoints and the same recipe (or --force)."""
    partial = partial_directory(output)
    root = partial / CHECKPOINTS
    if overwrite or not has_checkpoints(root):
        if resume and not overwrite:
            raise DistillError(
                f"resume: nothing to resume: {partial} has no checkpoints; "
                "drop --resume to start the run"
            )
        shutil.rmtree(partial, ignore_errors=True)  # stale, or replaced on request
        return False
    changed = recipe_changes(checkpoint_recipe(root) or {}, recipe)
    if changed and not force:
        raise DistillError(
            f"resume: {partial} was started with another recipe ({'; '.join(changed)}); run "
            "with --force to resume anyway, or --overwrite to start over"
        )
    return True


def recipe_changes(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[str]:
    """`field: old -> new` for every field that differs (nested keys joined with dots)."""
    changes = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        name = f"{prefix}{key}"
        if isinstance(old, dict) and isinstance(new, dict):
            changes += recipe_changes(old, new, f"{name}.")
        elif old != new:
            changes.append(f"{name}: {old!r} -> {new!r}")
    return changes


def save_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    path: Path,
    info: dict[str, Any],
    card: str | None = None,
) -> None:
    """save_pretrained() weights and tokenizer, plus distill.json (and a model card)."""
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    write_json(path / DISTILL_JSON, info)
    if card is not None:
        (path / "README.md").write_text(card)


def read_distill_json(model_dir: Path) -> dict[str, Any] | None:
    path = model_dir / DISTILL_JSON
    return json.loads(path.read_text()) if path.is_file() else None


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def environment() -> dict[str, Any]:
    """What produced the numbers: package versions, git commit, threads, CPU model."""
    versions = {}
    for package in ("distill", "torch", "transformers", "datasets", "accelerate", "numpy"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "git_commit": _git_commit(),
        "torch_threads": torch.get_num_threads(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
    }


def model_card(
    task: str, teacher: str, metrics: dict[str, Any], data_source: str, recipe_yaml: str
) -> str:
    rows = "\n".join(
        f"| {name} | {entry['score']:.4f} | {entry['params']:,} | {entry['latency_ms']:.2f} |"
        for name, entry in (("teacher", metrics["teacher"]), ("student", metrics["student"]))
    )
    return f"""---
library_name: transformers
pipeline_tag: text-classification
tags: [distill, knowledge-distillation, {task}]
---
# Distilled student for `{task}`

Distilled with distill from teacher `{teacher}`.

| model | {metrics["metric"]} | parameters | latency at batch 1 (ms) |
|---|---|---|---|
{rows}

Retention {metrics["retention"]:.3f}, speed-up {metrics["speedup"]:.2f}x.

## Data
Trained and evaluated on `{data_source}`. The data keeps the licence of its source
(GLUE tasks: see Wang et al. 2018 and each task's own licence).

## Use
```python
from transformers import pipeline
classifier = pipeline("text-classification", model="PATH/TO/THIS/FOLDER")
```

## Recipe
```yaml
{recipe_yaml.strip()}
```
"""


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
