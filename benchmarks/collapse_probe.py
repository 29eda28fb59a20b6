"""Why do 2-layer students collapse on CoLA and STS-B? Optimisation or information?

    .venv/bin/python benchmarks/collapse_probe.py [--tasks cola,stsb] [--layers 2]
        [--split held-out|dev] [--variants "suite,steps x10,lr x5"]

On the held-out split that `benchmarks/transfer.py select` uses (90% of each task's training
rows to train, 10% to score; dev untouched), the suite's 2-layer `distilbert` student is
trained again with one setting changed at a time:

- `suite`: the suite's settings (the row transfer.py select reports as `none`);
- `steps x10`: ten times the epochs on the labelled rows alone, i.e. as many optimizer steps as
  the student with a 10x transfer set takes: separates "more text" from "more steps";
- `lr x5`: five times the learning rate.

Next to each score: the last logged training task loss against the loss of predicting the
label prior (CoLA: the entropy of its class shares; STS-B: the variance of its scores). A
student whose training loss stays at the prior's has not fitted its own training rows:
an optimisation failure, not a lack of information in two blocks.

`--split dev` runs the same variants on the full training rows and scores GLUE dev, reusing
the teachers of `benchmarks/transfer.py final` (the control for its transfer-set rows: as many
steps without the teacher-labelled text). Writes benchmarks/results/collapse-probe.md (or
collapse-probe-dev.md with --split dev), and .json.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transfer import GLUE, WORK, held_out_glue  # benchmarks/transfer.py

from distill.data.config import DataConfig
from distill.data.load import load_task_data
from distill.modes.run import run
from distill.reports.rundir import environment
from distill.suite.glue import Suite
from distill.suite.settings import TASK_SETTINGS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


@dataclass
class ChangedSuite(Suite):
    """The suite with some `train` settings of every student changed."""

    train_changes: dict[str, Any] = field(default_factory=dict)

    def recipe(self, task: str, **changes: Any) -> dict[str, Any]:
        raw = super().recipe(task, **changes)
        raw["train"].update(self.train_changes)
        return raw


def variants(task: str) -> dict[str, dict[str, Any]]:
    settings = TASK_SETTINGS[task]
    return {
        "suite": {},
        "steps x10": {"epochs": 10 * settings["epochs"]},
        "lr x5": {"lr": 5 * settings.get("lr", 1e-4)},
    }


def prior_loss(task: str, data: Path) -> float:
    """The training loss of a constant prediction: class-share entropy, or score variance."""
    train = load_task_data(task, DataConfig(source="glue_dir", path=str(data))).train
    labels = train.labels
    if isinstance(labels[0], float):
        return statistics.pvariance(labels)
    shares = [labels.count(c) / len(labels) for c in set(labels)]
    return -sum(p * math.log(p) for p in shares)


def last_task_loss(run_dir: Path) -> float:
    history = [json.loads(line) for line in (run_dir / "history.jsonl").open()]
    return [r for r in history if r.get("phase") == "distill" and "task" in r][-1]["task"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="cola,stsb")
    parser.add_argument("--layers", default="2")
    parser.add_argument("--split", choices=["held-out", "dev"], default="held-out")
    parser.add_argument("--variants", default="suite,steps x10,lr x5")
    args = parser.parse_args()
    tasks, layers = args.tasks.split(","), [int(n) for n in args.layers.split(",")]
    start = time.perf_counter()
    dev = args.split == "dev"
    data = GLUE if dev else held_out_glue(tasks)
    base = WORK / ("final" if dev else "select")  # where the suite's own runs and teachers are
    probes = WORK / ("probe-dev" if dev else "probe")
    chosen = args.variants.split(",")
    rows = []
    for task in tasks:
        prior = prior_loss(task, data)
        for name, changes in variants(task).items():
            if name not in chosen:
                continue
            # every variant reuses the teacher of the same split
            work = base if not changes else probes / name.replace(" ", "")
            teacher = base / task / "teacher-run"
            if changes and teacher.is_dir():
                (work / task).mkdir(parents=True, exist_ok=True)
                link = work / task / "teacher-run"
                if not link.exists():
                    link.symlink_to(teacher.resolve(), target_is_directory=True)
            suite = ChangedSuite(
                tasks=[task],
                layers=layers,
                objective_sets=["distilbert"],
                data=data,
                work=work,
                results=work / "suite-results",
                train_changes=changes,
            )
            suite.execute(run, lambda line: print(line, file=sys.stderr))
            for row in suite.rows:
                run_dir = Path(row["run"])
                metrics = json.loads((run_dir / "metrics.json").read_text())
                rows.append(
                    {
                        "task": task,
                        "layers": row["layers"],
                        "variant": name,
                        "score": row["score"],
                        "teacher_score": row["teacher_score"],
                        "retention": row["retention"],
                        "train_task_loss": last_task_loss(run_dir),
                        "prior_loss": prior,
                        "student_minutes": metrics["train_seconds"] / 60,
                    }
                )
    minutes = (time.perf_counter() - start) / 60
    split = (
        "GLUE dev, full training rows, the teachers of benchmarks/transfer.py final"
        if dev
        else "held-out split of benchmarks/transfer.py select (90% of the training rows "
        "train, 10% score; dev untouched)"
    )
    options = f" --split dev --variants '{args.variants}'" if dev else ""
    lines = [
        "# 2-layer collapse: optimisation or information?",
        "",
        f"Command: `python benchmarks/collapse_probe.py --tasks {args.tasks} --layers "
        f"{args.layers}{options}` ({minutes:.0f} min for this invocation; finished runs are "
        "reused).  ",
        f"Machine: {environment()['cpu']}. Scores: {split}; objectives `distilbert`; one seed.",
        "",
        f"| task | layers | variant | {'dev' if dev else 'held-out'} score (teacher) "
        "| retention | last training task loss | loss of predicting the prior "
        "| student minutes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['layers']} | {r['variant']} | {r['score']:.4f} "
            f"({r['teacher_score']:.4f}) | {r['retention']:.3f} | {r['train_task_loss']:.4f} | "
            f"{r['prior_loss']:.4f} | {r['student_minutes']:.1f} |"
        )
    text = "\n".join(lines) + "\n"
    name = "collapse-probe-dev" if dev else "collapse-probe"
    (RESULTS / f"{name}.md").write_text(text)
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=1))
    print(text)


if __name__ == "__main__":
    main()
