"""What a transfer set buys: GLUE students distilled on the task's rows alone against the same
students with augmented rows the teacher labels (data.augment), through the GLUE suite.

    .venv/bin/python benchmarks/transfer.py select [--tasks cola] [--layers 2]
        [--candidates mask:10,ngram:10,neighbours:10,neighbours-mask:10]
    .venv/bin/python benchmarks/transfer.py final --augment neighbours-mask:10
        [--tasks sst2,cola,mrpc,stsb] [--layers 2,3]
    .venv/bin/python benchmarks/transfer.py select|final --render

`select` chooses settings without touching dev: each task's training rows are split 90/10
(seeded), teachers and students train on the 90% and are scored on the held-out 10%, once per
candidate (a transfer set `METHODS:COPIES`, methods joined by `-`) and once without one.
`final` applies the chosen setting to the full training rows and reports GLUE dev. Objectives:
the suite's `distilbert` set (task + soft targets + hidden cosine), the best set whose teacher
outputs can be cached (`deep` adds IIT, which runs the teacher live on every step: with ten
times the rows that is ten times the teacher's compute). Finished runs are reused.

Writes benchmarks/results/transfer-select.md or transfer.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from itertools import product
from pathlib import Path

from rows import (  # benchmarks/rows.py
    merge_rows,
    retention_table,
    said_commands,
    student_minutes,
    tasks_in,
)

from distill.data.tasks import GLUE_TASKS
from distill.modes.run import run
from distill.reports.rundir import environment
from distill.suite.glue import Suite, parse_augment

ROOT = Path(__file__).resolve().parents[1]
GLUE = ROOT.parent / "shared" / "data" / "glue"
WORK = ROOT / "runs" / "transfer"
RESULTS = ROOT / "benchmarks" / "results"
HELD_OUT = 0.1


def held_out_glue(tasks: list[str], seed: int = 0) -> Path:
    """A GLUE directory whose train.tsv is 90% of each task's training rows and whose dev.tsv
    is the other 10% (raw lines copied: the TSVs keep their quoting as they are)."""
    target = WORK / "held-out-glue"
    for task in tasks:
        folder = GLUE_TASKS[task].glue.folder  # type: ignore[union-attr]
        source = GLUE / folder / "train.tsv"
        header, *rows = source.read_text(encoding="utf-8").splitlines()
        order = list(range(len(rows)))
        random.Random(seed).shuffle(order)
        cut = int(len(rows) * HELD_OUT)
        (target / folder).mkdir(parents=True, exist_ok=True)
        for name, picked in (("dev.tsv", order[:cut]), ("train.tsv", sorted(order[cut:]))):
            text = "\n".join([header, *(rows[i] for i in picked)]) + "\n"
            path = target / folder / name
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
    return target


def spec_to_augment(spec: str) -> dict | None:
    """`neighbours-mask:10` -> {methods: [neighbours, mask], copies: 10}; `none` -> None.
    Methods are joined by `-` here, since `,` separates the candidates."""
    return None if spec == "none" else parse_augment(spec.replace("-", ","))


def run_suite(
    tasks: list[str], layers: list[int], data: Path, work: Path, augment: dict | None
) -> list[dict]:
    suite = Suite(
        tasks=tasks,
        layers=layers,
        objective_sets=["distilbert"],
        data=data,
        work=work,
        results=work / "suite-results",
        augment=augment,
    )
    suite.execute(run, lambda line: print(line, file=sys.stderr))
    rows = suite.rows if augment is None else [r for r in suite.rows if "+" in r["objectives"]]
    for row in rows:
        metrics = json.loads((Path(row["run"]) / "metrics.json").read_text())
        row["student_minutes"] = (metrics["train_seconds"] + metrics["cache_seconds"]) / 60
    return rows


def share_teachers(work: Path, base: Path, tasks: list[str]) -> Path:
    """`work` set up to reuse `base`'s fine-tuned teachers and teacher cache (symlinks): the
    cache's entries are keyed by the teacher and the rows, so students that train differently
    on the same rows reuse them."""
    for task in tasks:
        (work / task).mkdir(parents=True, exist_ok=True)
        link = work / task / "teacher-run"
        if not link.exists():
            link.symlink_to((base / task / "teacher-run").resolve(), target_is_directory=True)
    cache = work / "cache"
    if not cache.exists():
        (base / "cache").mkdir(parents=True, exist_ok=True)
        cache.symlink_to((base / "cache").resolve(), target_is_directory=True)
    return work


def merged(
    path: Path,
    rows: list[dict],
    key: Callable[[dict], tuple] = lambda r: (r["task"], r["layers"], r["objectives"]),
) -> list[dict]:
    """This invocation's rows plus the rows of the results file `path` it did not rerun (the
    same `key`: task, depth and objectives), so one depth or task can be added without
    re-running the others."""
    return merge_rows(json.loads(path.read_text()) if path.is_file() else [], rows, key)


def table(rows: list[dict], tasks: list[str], layers: list[int]) -> str:
    """Per configuration: each task's retention and the averages (rows.retention_table),
    transfer rows and student minutes."""
    configs = sorted(dict.fromkeys(r["objectives"] for r in rows), key=lambda c: "+" in c)
    groups = {}
    for depth, config in product(layers, configs):
        group = {r["task"]: r for r in rows if (r["layers"], r["objectives"]) == (depth, config)}
        if group:
            groups[depth, config.partition("+")[2] or "none"] = group
    last = [
        ("transfer rows", _transfer_rows),
        ("student minutes (cache included)", student_minutes),
    ]
    return "\n".join(retention_table(groups, tasks, ["layers", "transfer set"], last))


def _transfer_rows(group: dict[str, dict]) -> str:
    return f"{sum(r.get('transfer_examples') or 0 for r in group.values()):,}"


# Per phase: its results file, title and the split it scores on.
PHASES = {
    "select": (
        "transfer-select",
        "Transfer sets: choosing the setting on held-out training rows",
        "the held-out 10% of each task's training rows (dev untouched)",
    ),
    "final": (
        "transfer",
        "Transfer sets: GLUE dev retention with and without augmented rows",
        "GLUE dev",
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("phase", choices=list(PHASES))
    parser.add_argument("--tasks", default=None)
    parser.add_argument("--layers", default=None)
    parser.add_argument("--candidates", default="mask:10,ngram:10,neighbours:10,neighbours-mask:10")
    parser.add_argument("--augment", default=None, help="final: the chosen METHODS:COPIES")
    parser.add_argument(
        "--render", action="store_true", help="only rewrite the .md from the .json, run nothing"
    )
    args = parser.parse_args()
    name = PHASES[args.phase][0]
    if args.render:
        write(args.phase, json.loads((RESULTS / f"{name}.json").read_text()), [])
        return
    start = time.perf_counter()
    if args.phase == "select":
        tasks = (args.tasks or "cola").split(",")
        layers = [int(n) for n in (args.layers or "2").split(",")]
        data, work = held_out_glue(tasks), WORK / "select"
        specs = args.candidates.split(",")
    else:
        if not args.augment:
            sys.exit("final needs --augment METHODS:COPIES (the setting `select` chose)")
        tasks = (args.tasks or "sst2,cola,mrpc,stsb").split(",")
        layers = [int(n) for n in (args.layers or "2,3").split(",")]
        data, work, specs = GLUE, WORK / "final", [args.augment]
    rows = run_suite(tasks, layers, data, work, None)
    for spec in specs:
        rows += run_suite(tasks, layers, data, work, spec_to_augment(spec))
    minutes = (time.perf_counter() - start) / 60
    command = "python benchmarks/transfer.py " + " ".join(sys.argv[1:])
    for row in rows:
        row["command"], row["invocation_minutes"] = command, round(minutes)
    write(args.phase, merged(RESULTS / f"{name}.json", rows), tasks)


def write(phase: str, rows: list[dict], tasks: list[str]) -> None:
    """The phase's results file (.md and .json) from every row, this invocation's and earlier."""
    name, title, split = PHASES[phase]
    layers = sorted({r["layers"] for r in rows})
    text = (
        f"# {title}\n\nCommands: {said_commands(rows)} (finished runs are reused, so a repeated "
        "invocation takes less; each row in the .json names its command).  \nMachine: "
        f"{environment()['cpu']}. Teacher: the quickstart's MiniLM-L6 fine-tuned per task by the "
        "GLUE suite (on the labelled rows only); students: its first blocks, objectives "
        f"`distilbert`; scores on {split}.\n\n" + table(rows, tasks_in(rows, tasks), layers) + "\n"
    )
    (RESULTS / f"{name}.md").write_text(text)
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=1))
    print(text)


if __name__ == "__main__":
    main()
