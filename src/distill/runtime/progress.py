"""Rich progress bars in examples (examples/s and ETA), shared by training, caching and eval."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

# In a multi-process run (torchrun and accelerate launch set RANK) only the main process
# prints; errors are printed by every process that has one.
NOT_MAIN = os.environ.get("RANK", "0") != "0"
# stdout stays free for results a script may parse
console = Console(stderr=True, soft_wrap=True, quiet=NOT_MAIN)


class _ExamplesPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} ex/s" if speed else "- ex/s", style="cyan")


@contextmanager
def progress_bar(
    description: str, total_examples: int, completed: int = 0, enabled: bool = True
) -> Iterator[Any]:
    """Yields `advance(examples, **fields)`; `fields` (e.g. loss=0.31) are shown after the bar.
    `completed`: examples already done (a resumed run starts its bar there); `enabled` False
    shows nothing (the processes of a multi-process run other than the main one)."""
    if not enabled:
        yield lambda examples, **fields: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _ExamplesPerSecond(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
    ) as progress:
        task_id = progress.add_task(description, total=total_examples, completed=completed, info="")

        def advance(examples: int, **fields: float) -> None:
            info = " ".join(f"{key} {value:.4f}" for key, value in fields.items())
            progress.update(task_id, advance=examples, **({"info": info} if fields else {}))

        yield advance
