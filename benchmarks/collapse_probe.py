"""Why do 2-layer students collapse on CoLA and STS-B? Optimisation or information?

    .venv/bin/python benchmarks/collapse_probe.py [--tasks cola,stsb] [--layers 2]
        [--split held-out|dev] [--variants "suite,steps x10,lr x5"] [--seeds 0,1,2]
    .venv/bin/python benchmarks/collapse_probe.py --render   # the .md files from the .json

On the held-out split that `benchmarks/transfer.py select` uses (90% of each task's training
rows to train, 10% to score; dev untouched), the suite's 2-layer `distilbert` student is
trained again with one setting changed at a time:

- `suite`: the suite's settings (the row transfer.py select reports as `none`);
- `steps x10`: ten times the epochs on the labelled rows alone, i.e. as many optimizer steps as
  the student with a 10x transfer set takes: separates "more text" from "more steps";
- `lr x5`: five times the learning rate;
- `transfer`: the suite's settings with the transfer set `neighbours` + `mask`, 10 copies
  (the setting `transfer.py select` chose), i.e. the row `transfer.py final` reports;
- `transfer+epochs x2`: the same transfer set and twice the suite's epochs: does a student
  taught on ten times the rows still lack optimizer steps?
- `corpus`: instead of augmented rows, as many new sentences from the corpus
  (benchmarks/corpus_sentences.py, 76,000) as `data.transfer`: perturbed copies of the
  training sentences or new text? (single-sentence tasks; benchmarks/fit_probe.py's question)
- `transfer+corpus`: the augmented rows and the corpus sentences together (as many steps as
  `transfer+epochs x2`).
- `transfer+epochs x2+best`: `transfer+epochs x2` that ends with the weights scoring best on a
  tenth of the training rows held out (data.held_out_share 0.1, scored every 500 steps,
  keep_best): does choosing when to stop, without dev, keep the longer run from overfitting
  (MRPC)? The held-out tenth is neither trained on nor augmented.

Next to each score: the last logged training task loss against the loss of predicting the
label prior (CoLA: the entropy of its class shares; STS-B: the variance of its scores). A
student whose training loss stays at the prior's has not fitted its own training rows:
an optimisation failure, not a lack of information in two blocks.

`--split dev` runs the same variants on the full training rows and scores GLUE dev, reusing
the teachers of `benchmarks/transfer.py final` (the control for its transfer-set rows: as many
steps without the teacher-labelled text). `--seeds` trains every variant once per student seed
(the teacher, fine-tuned once per split, and its cache are shared). Rows of earlier invocations
are kept. Writes benchmarks/results/collapse-probe.md (or collapse-probe-dev.md with --split
dev), and .json.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from rows import said_commands  # benchmarks/rows.py
from transfer import (  # benchmarks/transfer.py
    GLUE,
    WORK,
    held_out_glue,
    share_teachers,
    spec_to_augment,
)
from transfer import merged as merged_with

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
    """The suite with some `train` settings of every student changed; with a transfer set, only
    the students trained on it."""

    train_changes: dict[str, Any] = field(default_factory=dict)
    data_changes: dict[str, Any] = field(default_factory=dict)  # the students' (not the teacher's)

    def variants(self, layers: int) -> list[tuple[bool, bool]]:
        return [(False, True)] if self.augment else super().variants(layers)

    def recipe(self, task: str, **changes: Any) -> dict[str, Any]:
        raw = super().recipe(task, **changes)
        raw["train"].update(self.train_changes)
        # students only: the teacher fine-tunes on the labelled rows (its recipe has finetune)
        if "finetune" not in changes.get("teacher", {}):
            raw["data"].update(self.data_changes)
        return raw


DEFAULT_VARIANTS = "suite,steps x10,lr x5"
TRANSFER = "neighbours-mask:10"  # the setting benchmarks/transfer.py select chose


CORPUS_SENTENCES = WORK / "corpus-sentences.txt"  # benchmarks/corpus_sentences.py --out


def variants(task: str) -> dict[str, tuple[dict[str, Any], dict | None, dict | None]]:
    """Each variant's `train` changes, augmentation and `data` changes."""
    settings = TASK_SETTINGS[task]
    augment = spec_to_augment(TRANSFER)
    corpus = {"transfer": {"files": [str(CORPUS_SENTENCES)]}}
    twice = {"epochs": 2 * settings["epochs"]}
    best = {**twice, "eval_every": 500, "keep_best": True}
    return {
        "suite": ({}, None, {}),
        "steps x10": ({"epochs": 10 * settings["epochs"]}, None, {}),
        "lr x5": ({"lr": 5 * settings.get("lr", 1e-4)}, None, {}),
        "transfer": ({}, augment, {}),
        "transfer+epochs x2": (twice, augment, {}),
        "corpus": ({}, None, corpus),
        "transfer+corpus": ({}, augment, corpus),
        "transfer+epochs x2+best": (best, augment, {"held_out_share": 0.1}),
    }


def prior_loss(task: str, data: Path) -> float:
    """The training loss of a constant prediction: class-share entropy, or score variance."""
    train = load_task_data(task, DataConfig(source="glue_dir", path=str(data))).train
    labels = train.labels
    if isinstance(labels[0], float):
        return statistics.pvariance(labels)
    shares = [labels.count(c) / len(labels) for c in set(labels)]
    return -sum(p * math.log(p) for p in shares)


def task_losses(run_dir: Path) -> tuple[float, float, int]:
    """The last logged training task loss, the mean of the last ten logged ones (the last record
    can cover a single step: with a transfer set that is a handful of labelled rows), and the
    optimizer steps taken."""
    history = [json.loads(line) for line in (run_dir / "history.jsonl").open()]
    logged = [r for r in history if r.get("phase") == "distill" and "task" in r]
    tail = [r["task"] for r in logged[-10:]]
    return logged[-1]["task"], sum(tail) / len(tail), logged[-1]["step"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="cola,stsb")
    parser.add_argument("--layers", default="2")
    parser.add_argument("--split", choices=["held-out", "dev"], default="held-out")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS)
    parser.add_argument(
        "--render", action="store_true", help="only rewrite the .md files from the .json files"
    )
    parser.add_argument(
        "--seeds", default="0", help="train.seed of the students (data order, dropout), e.g. 0,1,2"
    )
    args = parser.parse_args()
    if args.render:
        for name, dev in (("collapse-probe", False), ("collapse-probe-dev", True)):
            write(RESULTS / name, json.loads((RESULTS / f"{name}.json").read_text()), dev)
        return
    tasks, layers = args.tasks.split(","), [int(n) for n in args.layers.split(",")]
    start = time.perf_counter()
    dev = args.split == "dev"
    data = GLUE if dev else held_out_glue(tasks)
    base = WORK / ("final" if dev else "select")  # where the suite's own runs and teachers are
    probes = WORK / ("probe-dev" if dev else "probe")
    chosen = args.variants.split(",")
    seeds = [int(n) for n in args.seeds.split(",")]
    rows = []
    for task in tasks:
        prior = prior_loss(task, data)
        # the split's teacher, fine-tuned once and shared by every variant and seed
        teacher_suite = Suite(tasks=[task], layers=layers, objective_sets=[], data=data, work=base)
        teacher_suite.teacher_dir(task, run)
        for (name, (changes, augment, data_changes)), seed in product(
            variants(task).items(), seeds
        ):
            if name not in chosen:
                continue
            if "transfer" in data_changes and not CORPUS_SENTENCES.is_file():
                subprocess.run(
                    [
                        sys.executable,
                        str(ROOT / "benchmarks" / "corpus_sentences.py"),
                        "--out",
                        str(CORPUS_SENTENCES),
                    ],
                    check=True,
                )
            changed = changes or augment or data_changes or seed
            folder = name.replace(" ", "") + (f"-seed{seed}" if seed else "")
            work = base if not changed else probes / folder
            if changed:  # the split's teacher and its one cache, shared
                share_teachers(work, base, [task])
            suite = ChangedSuite(
                tasks=[task],
                layers=layers,
                objective_sets=["distilbert"],
                data=data,
                work=work,
                results=work / "suite-results",
                train_changes=changes,
                augment=augment,
                data_changes=data_changes,
                seed=seed,
            )
            suite.execute(run, lambda line: print(line, file=sys.stderr))
            for row in suite.rows:
                run_dir = Path(row["run"])
                metrics = json.loads((run_dir / "metrics.json").read_text())
                last, tail, steps = task_losses(run_dir)
                rows.append(
                    {
                        "task": task,
                        "layers": row["layers"],
                        "variant": name,
                        "seed": seed,
                        "score": row["score"],
                        "teacher_score": row["teacher_score"],
                        "retention": row["retention"],
                        "train_task_loss": last,
                        "train_task_loss_last10": tail,
                        "steps": steps,
                        "transfer_rows": metrics.get("transfer_examples", 0),
                        "prior_loss": prior,
                        "student_minutes": metrics["train_seconds"] / 60,
                    }
                )
    minutes = (time.perf_counter() - start) / 60
    options = (
        (" --split dev" if dev else "")
        + (f" --variants '{args.variants}'" if args.variants != DEFAULT_VARIANTS else "")
        + (f" --seeds {args.seeds}" if args.seeds != "0" else "")
    )
    command = f"python benchmarks/collapse_probe.py --tasks {args.tasks} --layers {args.layers}"
    for row in rows:
        row.update(command=command + options, invocation_minutes=round(minutes))
    name = "collapse-probe-dev" if dev else "collapse-probe"
    rows = merged(RESULTS / f"{name}.json", rows)
    write(RESULTS / name, rows, dev)


def write(stem: Path, rows: list[dict], dev: bool) -> None:
    """The .json as is and the .md: every run, then mean ± sd where a row has several seeds."""
    split = (
        "GLUE dev, full training rows, the teachers of benchmarks/transfer.py final"
        if dev
        else "held-out split of benchmarks/transfer.py select (90% of the training rows "
        "train, 10% score; dev untouched)"
    )
    lines = [
        "# 2-layer collapse: optimisation or information?",
        "",
        f"Commands: {said_commands(rows)} (finished runs are reused, so a repeated invocation "
        "takes less).  ",
        f"Machine: {environment()['cpu']}. Scores: {split}; objectives `distilbert`; the "
        "teacher is the same for every row of a task; `seed` is the student's train.seed.",
        "",
        f"| task | layers | variant | seed | {'dev' if dev else 'held-out'} score (teacher) "
        "| retention | last training task loss | mean of the last ten | loss of predicting the "
        "prior | steps | transfer rows | student minutes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        tail = f"{r['train_task_loss_last10']:.4f}" if "train_task_loss_last10" in r else "-"
        steps = f"{r['steps']:,}" if "steps" in r else "-"
        lines.append(
            f"| {r['task']} | {r['layers']} | {r['variant']} | {r['seed']} | "
            f"{r['score']:.4f} ({r['teacher_score']:.4f}) | {r['retention']:.3f} | "
            f"{r['train_task_loss']:.4f} | {tail} | {r['prior_loss']:.4f} | {steps} | "
            f"{r.get('transfer_rows', 0):,} | {r['student_minutes']:.1f} |"
        )
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["layers"], r["variant"]), []).append(r)
    if any(len(g) > 1 for g in groups.values()):
        lines += [
            "",
            "Over seeds (mean ± sample standard deviation):",
            "",
            "| task | layers | variant | seeds | retention |",
            "|---|---|---|---|---|",
        ]
        for (task, layers, variant), group in groups.items():
            if len(group) > 1:
                values = [r["retention"] for r in group]
                seeds = ", ".join(str(r["seed"]) for r in group)
                lines.append(
                    f"| {task} | {layers} | {variant} | {seeds} | {statistics.mean(values):.3f} "
                    f"± {statistics.stdev(values):.3f} |"
                )
    text = "\n".join(lines) + "\n"
    stem.with_suffix(".md").write_text(text)
    stem.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(text)


def merged(path: Path, rows: list[dict]) -> list[dict]:
    """This invocation's rows plus the earlier ones it did not rerun, in task order."""
    order = list(variants("cola"))
    return sorted(
        merged_with(path, rows, key=lambda r: (r["task"], r["layers"], r["variant"], r["seed"])),
        key=lambda r: (r["task"], r["layers"], order.index(r["variant"]), r["seed"]),
    )


if __name__ == "__main__":
    main()
