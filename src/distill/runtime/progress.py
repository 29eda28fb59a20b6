"""Progress in examples (examples/s and ETA), shared by training, caching and eval: a rich bar
on a terminal, a plain line every PLAIN_EVERY_SECONDS in a log (output redirected, CI, nohup)."""

from __future__ import annotations

import os
import time
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
# Without a terminal, rich draws its bar once, at the end: a log would show nothing for the
# many minutes of a run. Instead a plain line goes out this often (and one at the end).
PLAIN_EVERY_SECONDS = 30.0


_RATE = {"examples": "ex/s", "tokens": "tok/s"}


def _rate(unit: str) -> str:
    return _RATE.get(unit, f"{unit}/s")


class _PerSecond(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.rate = _rate(unit)

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} {self.rate}" if speed else f"- {self.rate}", style="cyan")


@contextmanager
def progress_bar(
    description: str,
    total_examples: int | None,
    completed: int = 0,
    enabled: bool = True,
    unit: str = "examples",
) -> Iterator[Any]:
    """Yields `advance(count, **fields)`; `fields` (e.g. loss=0.31) are shown after the bar.
    `completed`: what is already done (a resumed run starts its bar there); `enabled` False
    shows nothing (the processes of a multi-process run other than the main one); `unit`:
    what is counted (examples, tokens); a total of None: not known in advance (no eta)."""
    if not enabled:
        yield lambda examples, **fields: None
        return
    if not console.is_terminal:
        yield from _plain_lines(description, total_examples, completed, unit)
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _PerSecond(unit),
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


def _plain_lines(
    description: str, total: int | None, completed: int, unit: str = "examples"
) -> Iterator[Any]:
    """`advance` for a log: `phase: done/total examples (pct), ex/s, elapsed, eta, fields`."""
    start = last = time.perf_counter()
    done, shown = completed, {}

    def line(now: float) -> None:
        elapsed = now - start
        speed = (done - completed) / elapsed if elapsed > 0 else 0.0
        if total is None:
            head, eta = f"{description}: {done:,} {unit}", []
        else:
            percent = f"({100 * done / max(total, 1):.0f}%)"
            head = f"{description}: {done:,}/{total:,} {unit} {percent}"
            eta = [f"eta {_duration((total - done) / speed) if speed > 0 else '-'}"]
        parts = [
            head,
            f"{speed:,.0f} {_rate(unit)}",
            f"elapsed {_duration(elapsed)}",
            *eta,
            *(f"{key} {value:.4f}" for key, value in shown.items()),
        ]
        console.print(", ".join(parts), highlight=False)

    def advance(examples: int, **fields: float) -> None:
        nonlocal done, last
        done += examples
        shown.update(fields)
        now = time.perf_counter()
        if now - last >= PLAIN_EVERY_SECONDS:
            last = now
            line(now)

    yield advance
    line(time.perf_counter())


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"
