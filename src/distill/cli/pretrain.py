"""`distill pretrain`: general distillation of a student on a text corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distill.cli.common import (
    ForceOption,
    OverwriteOption,
    ResumeOption,
    SetOption,
    errors,
    out,
)


def pretrain_command(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe with a `corpus` section.")],
    set_: SetOption = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Run directory.")] = Path("runs/pretrain"),
    overwrite: OverwriteOption = False,
    resume: ResumeOption = False,
    force: ForceOption = False,
) -> None:
    """Distil a task-agnostic student on a corpus (DistilBERT, MiniLMv2); task recipes start
    from OUT/student with `student: {init: pretrained, model: OUT/student}`."""
    with errors():
        from distill.config.pretrain import PretrainRecipe
        from distill.modes.pretrain import pretrain

        metrics = pretrain(
            PretrainRecipe.from_yaml(recipe, set_), out_dir, overwrite, resume, force
        )
        out.print(f"tokens seen {metrics['tokens_seen']:,}; student saved in {out_dir / 'student'}")
