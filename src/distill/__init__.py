"""distill: knowledge distillation of transformer models.

from distill import Recipe, run
result = run(Recipe.from_yaml("recipes/distilbert.yaml"))
"""

from __future__ import annotations

from typing import Any

from distill.errors import DistillError

__all__ = ["DistillError", "Recipe", "RunResult", "run"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Imported on first use: torch and transformers take seconds; `distill --help` needs neither.
    if name == "Recipe":
        from distill.config.recipe import Recipe

        return Recipe
    if name in ("run", "RunResult"):
        from distill.modes import run as run_module

        return getattr(run_module, name)
    raise AttributeError(name)
