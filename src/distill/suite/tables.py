"""The GLUE suite's results as report blocks (RESULTS.md) and its report (WORK/report.md and
report.html with the retention figures)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Protocol

from distill.reports import document, figures
from distill.reports.rundir import environment
from distill.suite.averages import AVERAGED, average_rows
from distill.suite.settings import PUBLISHED


class Suite(Protocol):
    """What the tables read of a `distill.suite.glue.Suite` (which imports this module)."""

    tasks: list[str]
    layers: list[int]
    objective_sets: list[str]
    teacher: str
    work: Path
    max_train_examples: int | None
    test_predictions: bool
    student_blocks: str
    rows: list[dict[str, Any]]


def write_suite_report(suite: Suite) -> Path:
    """WORK/report.md and report.html: the table, retention per task and the trade-off."""
    plots = suite.work / "plots"
    configs = list(dict.fromkeys((r["layers"], r["objectives"]) for r in suite.rows))
    points = []
    for layers, objectives in configs:
        mine = [r for r in suite.rows if (r["layers"], r["objectives"]) == (layers, objectives)]
        # WNLI stays out of the average, as in the tables, unless it is all there is
        mine = [r for r in mine if r["task"] in AVERAGED] or mine
        points.append(
            {
                "layers": layers,
                "objectives": objectives,
                "retention": statistics.mean(r["retention"] for r in mine),
                "speedup": statistics.mean(r["speedup"] for r in mine),
            }
        )
    by_task = figures.plot_retention_by_task(suite.rows, plots / "retention.png")
    tradeoff = figures.plot_retention_vs_speedup(points, plots / "tradeoff.png")
    blocks: list[document.Block] = [
        *results_blocks(suite),
        document.Figure(str(by_task.relative_to(suite.work)), "Retention per task"),
        document.Figure(
            str(tradeoff.relative_to(suite.work)),
            "Average retention against average speed-up, per configuration",
        ),
    ]
    markdown, _ = document.write(blocks, suite.work, "distill: GLUE benchmark")
    return markdown


def results_blocks(suite: Suite) -> list[document.Block]:
    """The results as report blocks: the command and machine, every student, the average
    retention, and the published retention next to it."""
    budget = (
        f"training sets subsampled to at most {suite.max_train_examples:,} examples (time budget); "
        if suite.max_train_examples
        else ""
    )
    limit = (
        f" --max-train-examples {suite.max_train_examples}" if suite.max_train_examples else ""
    ) + (" --test-predictions" if suite.test_predictions else "")
    averages = [
        [
            f"{a['layers']} / {a['objectives']}",
            *(f"{a['by_task'][task]:.3f}" for task in AVERAGED),
            f"{a['retention']:.3f}",
            f"{a['teacher_score']:.4f}",
            f"{a['score']:.4f}",
            f"{a['params']:,}",
            f"{a['speedup']:.2f}x",
        ]
        for a in average_rows(suite.rows)
    ]
    return [
        "# GLUE (small): retention of distilled students",
        f"Command: `distill benchmark glue --tasks {','.join(suite.tasks)} --layers "
        f"{','.join(map(str, suite.layers))} --objectives {','.join(suite.objective_sets)}"
        f" --student-blocks {suite.student_blocks}{limit}`. Machine: {environment()['cpu']}; "
        f"teacher `{suite.teacher}` fine-tuned per task; {budget}dev split, official metrics.",
        document.Table(
            [
                "task",
                "metric",
                "teacher",
                "layers / objectives",
                "score",
                "retention",
                "parameters",
                "latency (ms)",
                "speed-up",
            ],
            [
                [
                    row["task"],
                    row["metric"],
                    f"{row['teacher_score']:.4f}",
                    f"{row['layers']} / {row['objectives']}",
                    f"{row['score']:.4f}",
                    f"{row['retention']:.3f}",
                    f"{row['params']:,}",
                    f"{row['latency_ms']:.2f}",
                    f"{row['speedup']:.2f}x",
                ]
                for row in suite.rows
            ],
        ),
        "Averages over SST-2, CoLA, MRPC and STS-B (WNLI is reported above but left out, as "
        "GLUE baselines do); the average retention is the mean of the four ratios:",
        document.Table(
            [
                "layers / objectives",
                *(f"{task} retention" for task in AVERAGED),
                "average retention",
                "teacher mean score",
                "student mean score",
                "parameters",
                "mean speed-up",
            ],
            averages,
        ),
        "Published retention on the same four tasks. They used other teachers (BERT-base, "
        "12 layers) and other training regimes, so the comparison is indicative only:",
        document.Table(
            ["model", "paper", "scored on", "average", "CoLA", "regime"],
            [
                [name, paper, split, *(f"{v:.3f}" if v is not None else "–" for v in (a, c))]
                + [regime]
                for name, paper, split, a, c, regime in PUBLISHED
            ],
        ),
    ]
