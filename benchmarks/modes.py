"""Modes against standard distillation with the same student budget, on real GLUE data.

    .venv/bin/python benchmarks/modes.py [--seeds 0,1] [--configs ...]

Every student has 3 layers (teacher blocks 0, 2, 4, or the first 3 blocks for the early exit)
and trains for the steps the objectives benchmark gives it (SST-2: 300 steps of 32; MRPC:
345), with DistilBERT's objectives (0.5 task + 0.5 soft targets at T=2 + cosine on the last
hidden states). The teachers are the objectives benchmark's (MiniLM-L6 fine-tuned on each
task, reused from its work directory or fine-tuned once), plus a second SST-2 teacher
fine-tuned on another 20k sentences for the ensemble. Born-again trains a 6-layer student (the
teacher's own architecture), so it is compared with its teacher, not with the 3-layer students.
Each run is a full `distill.run` in WORK/<config>-s<seed>/, skipped when finished (resumable).
Writes benchmarks/results/modes.{md,json}. Never in CI.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from distill.config.recipe import Recipe  # noqa: E402
from distill.modes.run import run  # noqa: E402
from distill.reports.rundir import environment  # noqa: E402
from objectives import GLUE, ROOT, TASKS, TEACHER_BASE, _base, _recipe_part, teacher_for  # noqa: E402

DISTILBERT = _recipe_part("quickstart")["objectives"]
LOGITS_ONLY = DISTILBERT[:2]
OBJECTIVES_WORK = ROOT / "runs" / "bench-objectives"
WORK = ROOT / "runs" / "bench-modes"


def second_teacher(work: Path) -> Path:
    """Another SST-2 teacher: the same fine-tuning on a different 20k-sentence subsample."""
    out = work / "sst2-teacher-b"
    if not (out / "metrics.json").is_file():
        raw = _base("sst2", 1, work / "cache")  # seed 1: another subsample and batch order
        raw["teacher"] = {"model": TEACHER_BASE, "finetune": TASKS["sst2"]["finetune"]}
        raw["objectives"] = [{"name": "task"}]
        raw["train"]["max_steps"] = 1
        run(Recipe.from_dict(raw), out=out, overwrite=True)
    return out / "teacher"


def recipe_for(config: str, seed: int, work: Path) -> tuple[dict[str, Any], list[str]]:
    """The recipe of one configuration and the tasks whose students it scores."""
    sst2 = teacher_for("sst2", OBJECTIVES_WORK)
    raw = _base("sst2", seed, work / "cache")
    # Every mode's teacher runs live for hidden states, as the standard baseline's did in the
    # objectives benchmark: the comparison is of modes, not of the states cache.
    raw["cache"]["states_budget_gb"] = 0
    raw["objectives"] = DISTILBERT
    if config == "standard":
        raw["teacher"] = {"model": str(sst2)}
    elif config == "standard mrpc":
        raw = _base("mrpc", seed, work / "cache")
        raw["cache"]["states_budget_gb"] = 0
        raw["teacher"] = {"model": str(teacher_for("mrpc", OBJECTIVES_WORK))}
        raw["objectives"] = DISTILBERT
        raw["train"]["max_steps"] = TASKS["mrpc"]["steps"]
        return raw, ["mrpc"]
    elif config == "ensemble":
        raw["mode"] = "multi_teacher"
        raw["teachers"] = [
            {"name": "a", "model": str(sst2)},
            {"name": "b", "model": str(second_teacher(WORK))},
        ]
        raw["objectives"] = [*LOGITS_ONLY, {**DISTILBERT[2], "teacher": "a"}]
    elif config == "multi-task":
        mrpc = TASKS["mrpc"]
        raw["mode"] = {
            "name": "multi_teacher",
            # each head gets, in expectation, the steps its single-task student gets
            "task_weights": {"sst2": TASKS["sst2"]["steps"], "mrpc": mrpc["steps"]},
        }
        raw["tasks"] = [
            {"name": "sst2"},
            {"name": "mrpc", "data": {"source": "glue_dir", "path": str(GLUE)}},
        ]
        del raw["task"]
        raw["teachers"] = [
            {"name": "sst2", "model": str(sst2), "task": "sst2"},
            {"name": "mrpc", "model": str(teacher_for("mrpc", OBJECTIVES_WORK)), "task": "mrpc"},
        ]
        raw["train"]["max_steps"] = TASKS["sst2"]["steps"] + mrpc["steps"]
        raw["train"]["max_length"] = mrpc["max_length"]
        return raw, ["sst2", "mrpc"]
    elif config == "co-distill":
        raw["mode"] = {"name": "co_distill", "teacher_lr": TASKS["sst2"]["finetune"]["lr"]}
        raw["teacher"] = {"model": TEACHER_BASE}
    elif config == "early exit":
        raw["mode"] = {"name": "self_distill", "exits": [3, 2]}
        raw["teacher"] = {"model": str(sst2)}
        del raw["student"]
    elif config == "born-again":
        # generation 0 is fine-tuned here as the teacher was; generation 1 starts from MiniLM-L6
        # too and gets the same budget (20k sentences, batch 64, lr 1.5e-4), from generation 0
        finetune = TASKS["sst2"]["finetune"]
        raw["mode"] = {"name": "self_distill", "generations": 1}
        raw["teacher"] = {"model": TEACHER_BASE, "finetune": finetune}
        raw["objectives"] = LOGITS_ONLY
        raw["train"] |= {
            "max_steps": -(-finetune["max_train_examples"] // finetune["batch_size"]),
            "batch_size": finetune["batch_size"],
            "lr": finetune["lr"],
            "freeze_embeddings": False,
        }
        del raw["student"]
    return raw, ["sst2"]


CONFIGS = [
    "standard",
    "ensemble",
    "co-distill",
    "early exit",
    "born-again",
    "standard mrpc",
    "multi-task",
]


def run_config(config: str, seed: int, work: Path, smoke: bool = False) -> list[dict[str, Any]]:
    raw, tasks = recipe_for(config, seed, work)
    out = work / f"{config.replace(' ', '-')}-s{seed}"
    reused = OBJECTIVES_WORK / "mrpc" / f"DistilBERT-s{seed}"
    if config == "standard mrpc" and (reused / "metrics.json").is_file() and not smoke:
        out = reused  # the objectives benchmark's identical run (same teacher, data, steps)
    if smoke:  # every configuration end to end in seconds, to find errors before hours
        raw["train"]["max_steps"] = 2
        for data in [raw["data"], *(t.get("data", {}) for t in raw.get("tasks", []))]:
            data |= {"max_train_examples": 100, "max_eval_examples": 50}
        if raw.get("teacher", {}).get("finetune"):
            raw["teacher"]["finetune"] = {"max_steps": 2}
        out = out.with_name(out.name + "-smoke")
    if not (out / "metrics.json").is_file():
        run(Recipe.from_dict(raw), out=out, overwrite=True)
    metrics = json.loads((out / "metrics.json").read_text())
    steps = raw["train"]["max_steps"]
    if config == "multi-task":
        entries = [(r["task"], r["teacher"], r["student"]) for r in metrics["runs"]]
    else:
        entries = [(tasks[0], metrics["teacher"], metrics["student"])]
    return [
        {
            "config": config,
            "task": task,
            "seed": seed,
            "score": student["score"],
            "teacher_score": teacher["score"],
            "student_params": student["params"],
            "teacher_params": teacher["params"],
            "student_latency_ms": student["latency_ms"],
            "seconds_per_step": metrics["train_seconds"] / steps,
            "train_seconds": metrics["train_seconds"],
            "extra": _extra(config, metrics),
        }
        for task, teacher, student in entries
    ]


def _extra(config: str, metrics: dict[str, Any]) -> str:
    """What a mode adds to the story: the other exit, the single teachers, ..."""
    if config == "early exit":
        other = metrics["runs"][1]
        return (
            f"final layer {metrics['teacher']['score']:.4f} (before: "
            f"{metrics['teacher']['score_before_exits']:.4f}); exit after block 2: "
            f"{other['student']['score']:.4f}"
        )
    if config == "ensemble":
        return "single teachers " + ", ".join(
            f"{r['name'].split()[0]} {r['teacher']['score']:.4f}" for r in metrics["runs"]
        )
    if config == "co-distill":
        return "teacher trained jointly from MiniLM-L6 (no fine-tuning before)"
    if config == "born-again":
        return "generation 1 (6 layers) vs generation 0, same budget each"
    return ""


def summarise(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| mode | task | student score | teacher score | retention | student params "
        "| s/step | notes (seed 0) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for config in CONFIGS:
        for task in ("sst2", "mrpc"):
            found = [r for r in rows if r["config"] == config and r["task"] == task]
            if not found:
                continue
            scores = [r["score"] for r in found]
            teachers = [r["teacher_score"] for r in found]
            spread = (max(scores) - min(scores)) / 2
            mean = statistics.mean(scores)
            retention = statistics.mean(r["score"] / r["teacher_score"] for r in found)
            lines.append(
                f"| {config} | {task} | {mean:.4f}"
                + (f" ± {spread:.4f}" if len(found) > 1 else "")
                + f" | {statistics.mean(teachers):.4f} | {retention:.3f} | "
                f"{found[0]['student_params'] / 1e6:.1f}M | "
                f"{statistics.mean(r['seconds_per_step'] for r in found):.3f} | "
                f"{found[0]['extra']} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--work", default=str(WORK))
    parser.add_argument("--smoke", action="store_true", help="2 steps per run, no results")
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "modes"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    configs = args.configs.split(",")
    torch.set_num_threads(2)
    work = Path(args.work)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        for config in configs:
            rows += run_config(config, seed, work, args.smoke)
            print(f"[modes] {config} seed {seed}: {rows[-1]['score']:.4f}", flush=True)
    if args.smoke:
        return
    table = summarise(rows)
    command = " ".join(["python benchmarks/modes.py", *sys.argv[1:]])
    text = (
        "# Modes against standard distillation, same student budget\n\n"
        f"Command: `{command}`  \n"
        f"Machine: {environment()['cpu']}, {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}. Training time summed over the {len(rows)} rows: "
        f"{sum(r['train_seconds'] for r in rows) / 60:.0f} min; this invocation: "
        f"{(time.perf_counter() - started) / 60:.1f} min (finished runs are reused).\n\n"
        + __doc__.split("\n\n", 2)[2].rsplit("\nWrites", 1)[0]
        + "\n\nDev-set scores (SST-2: accuracy; MRPC: mean of F1 and accuracy), mean ± half the "
        f"range over seeds {', '.join(map(str, seeds))}. s/step: training seconds / steps "
        "(co-distillation and early exits train the 6-layer teacher too; multi-task: per step "
        "of either task).\n\n"
        f"{table}\n"
    )
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    results.with_suffix(".md").write_text(text)
    print(table)


if __name__ == "__main__":
    main()
