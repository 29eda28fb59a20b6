"""What every `distill` command shares: the results console, one-line errors, --set."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from distill.errors import DistillError
from distill.runtime.progress import NOT_MAIN

# results go to stdout; progress bars and logs go to stderr
out = Console(soft_wrap=True, quiet=NOT_MAIN)

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a recipe key: --set train.lr=3e-5 (list items by index: "
        "objectives.1.weight=0.3). Repeatable.",
    ),
]


OverwriteOption = Annotated[
    bool, typer.Option(help="Replace an existing run directory (and start over).")
]
ResumeOption = Annotated[
    bool, typer.Option(help="Insist on resuming OUT.partial/ (automatic when it exists).")
]
ForceOption = Annotated[
    bool, typer.Option(help="Resume even though the recipe changed since the checkpoints.")
]


class errors:
    """Turn a DistillError into one red line on stderr and exit code 1 (no traceback)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, error: BaseException | None, _tb: object) -> bool:
        from distill.runtime.interrupts import Interrupted

        if isinstance(error, Interrupted):
            Console(stderr=True).print(f"[yellow]interrupted:[/] {error}", soft_wrap=True)
            raise typer.Exit(130)
        if isinstance(error, DistillError):
            Console(stderr=True).print(
                f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(1)
        if isinstance(error, KeyboardInterrupt):
            Console(stderr=True).print(
                "[yellow]interrupted[/]: stopped at once; a run resumes from its last "
                "checkpoint (if any) when the same command is run again"
            )
            raise typer.Exit(130)
        return False
