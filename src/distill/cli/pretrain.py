"""`distill pretrain`: general distillation of a student on a text corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distill.cli.common import SetOption, errors, out


def pretrain_command(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe with a `corpus` section.")],
    set_: SetOption = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Run directory.")] = Path("runs/pretrain"),
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing run directory (and start over).")
    ] = False,
    resume: Annotated[
        bool, typer.Option(help="Insist on resuming OUT.partial/ (automatic when it exists).")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="Resume even though the recipe changed since the checkpoints.")
    ] = False,
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
