"""`run(recipe)`: the one entry point; the recipe's mode decides how the models are trained.

Every mode checks its inputs before OUT.partial/ is created and leaves OUT/ complete or absent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import set_seed

from distill.config.recipe import Recipe
from distill.config.train import TrainConfig
from distill.data.tasks import CAUSAL_LM_TASKS
from distill.modes import MODES
from distill.modes.causal_lm import run_causal_lm
from distill.reports.rundir import CHECKPOINTS, check_output, partial_directory, prepare_resume
from distill.runtime import distributed
from distill.runtime.progress import console
from distill.training import checkpoint


@dataclass
class RunResult:
    path: Path
    metrics: dict[str, Any]


def run(
    recipe: Recipe,
    out: str | Path | None = None,
    overwrite: bool = False,
    resume: bool = False,
    force: bool = False,
) -> RunResult:
    """Run a recipe end to end; returns the finished run directory and its metrics.

    An interrupted run (OUT.partial/ with checkpoints) resumes where it stopped; `resume`
    insists on it, `force` accepts a changed recipe, `overwrite` starts over."""
    name = recipe.task or "-".join(recipe.task_names())
    output = Path(out or recipe.output or f"runs/{name}")
    settings = recipe.model_dump(mode="json", exclude={"output"})
    with run_session(output, settings, recipe.train, overwrite, resume, force):
        if recipe.task in CAUSAL_LM_TASKS:
            metrics = run_causal_lm(recipe, output, overwrite)
        else:
            metrics = MODES[recipe.mode.name](recipe, output, overwrite)
    return RunResult(output, metrics)


@contextmanager
def run_session(
    output: Path,
    settings: dict[str, Any],
    train: TrainConfig,
    overwrite: bool,
    resume: bool,
    force: bool,
) -> Iterator[None]:
    """What every run does around its training (`distill run`, `distill pretrain`): refuse a
    finished OUT/ unless overwriting, decide whether OUT.partial/ resumes (the recipe
    `settings` against its checkpoints'), set threads and the seed, then checkpoint the
    phases trained inside the block."""
    check_output(output, overwrite)
    # the main process decides (and clears a stale OUT.partial/); the others follow
    if distributed.from_main(lambda: prepare_resume(output, settings, overwrite, resume, force)):
        console.print(f"[bold]resuming[/] {partial_directory(output)} from its checkpoints")
    if train.threads:
        torch.set_num_threads(train.threads)
    # Seed before any model is loaded: a new classification head is initialised at load time.
    set_seed(train.seed)
    root = partial_directory(output) / CHECKPOINTS
    with checkpoint.checkpointing(root, train.checkpoint_every, train.keep_checkpoints, settings):
        yield
