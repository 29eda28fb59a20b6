"""`run(recipe)`: the one entry point; the recipe's mode decides how the models are trained.

Every mode checks its inputs before OUT.partial/ is created and leaves OUT/ complete or absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import set_seed

from distill.modes import MODES
from distill.recipe import Recipe
from distill.rundir import check_output


@dataclass
class RunResult:
    path: Path
    metrics: dict[str, Any]


def run(recipe: Recipe, out: str | Path | None = None, overwrite: bool = False) -> RunResult:
    """Run a recipe end to end; returns the finished run directory and its metrics."""
    name = recipe.task or "-".join(recipe.task_names())
    output = Path(out or recipe.output or f"runs/{name}")
    check_output(output, overwrite)
    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    # Seed before any model is loaded: a new classification head is initialised at load time.
    set_seed(recipe.train.seed)
    metrics = MODES[recipe.mode.name](recipe, output, overwrite)
    return RunResult(output, metrics)
