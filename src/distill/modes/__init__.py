"""Modes: how a run forms its training steps, and `run(recipe)`, the one entry point that picks
the recipe's mode. Each mode is a function `(recipe, output, overwrite) -> metrics` that checks
its inputs, trains, and writes the run directory. Composes the layers below it (teacher,
training, evaluation, reports, config, ...); imported only by deploy, suite and cli."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from distill.config.recipe import Recipe
from distill.modes import co_distill, multi_teacher, self_distill, standard
from distill.modes.co_distill import run_co_distill
from distill.modes.multi_teacher import run_multi_teacher
from distill.modes.self_distill import run_self_distill
from distill.modes.standard import run_standard

ModeRun = Callable[[Recipe, Path, bool], dict[str, Any]]

MODES: dict[str, ModeRun] = {
    "standard": run_standard,
    "multi_teacher": run_multi_teacher,
    "co_distill": run_co_distill,
    "self_distill": run_self_distill,
}

# The plan each mode prints for `distill check` (and first thing in `distill run`).
DESCRIBE: dict[str, Callable[[Recipe], list[str]]] = {
    "standard": standard.describe,
    "multi_teacher": multi_teacher.describe,
    "co_distill": co_distill.describe,
    "self_distill": self_distill.describe,
}
